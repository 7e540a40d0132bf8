"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022) as a jit-able batch op.

A detector trained on real faces and their self-blends learns the traces that every
face swap leaves where a pasted face meets its frame (colour and frequency
mismatch, a blurred seam, a slightly shifted face) without seeing one swap. For
each real face crop `x` with 68 landmarks:

1. source = a copy of `x` with colour jitter (hue, saturation, brightness, contrast
   via `deepjax.ops.color_augment.color_jitter`, plus a per-channel RGB shift) and,
   with probability `frequency_prob`, a frequency change (half-resolution
   down-and-up sampling or sharpening, chosen at random);
2. mask = the convex hull of the landmarks (`deepjax.ops.face_hull.hull_signed_distance`)
   of one of three kinds, chosen at random: jaw + brows (the hull of all 68 points),
   jaw + brows raised over the forehead by `forehead` (as
   `deepjax.faces.mask.hull_points`), or the inner face (brows, lower nose, lips); eroded or dilated by a random margin `grow`;
3. source and mask move together by a small random scale and translation (SBI:
   scale in [0.95, 1/0.95], shift up to 3 % across and 1.5 % down; `deepjax.ops.warp`
   remap); the mask alone is then deformed by a random smooth warp (the elastic step;
   `deepjax.ops.warp.random_warp`);
4. the mask is blurred by a Gaussian of random width (truncated at 3 sigma, so it is
   exactly zero away from the face), divided by its maximum, and scaled by a blend
   ratio drawn from `ratios` (SBI: 0.25, 0.5, 0.75, 1, 1, 1);
5. fake = mask * source + (1 - mask) * x.

Unlike the reference, the target is always the unchanged input (the reference
jitters the source or the target at random), so where the mask is 0 the fake
equals the input exactly and the real image of a (real, fake) pair is `x` itself.

Images are float32 (B,H,W,3) in [0,1]; landmarks float32 (B,68,2) in [-1,1]
(docs/CONTRACTS.md). Configs are dicts or ConfigDicts of python scalars
(`SBI_DEFAULTS`).
"""
import functools
from typing import Any

import jax
import jax.numpy as jnp

from deepjax.configs_lib import read_fields
from deepjax.errors import UserError
from deepjax.ops import color_augment, face_hull, sampling, warp

SBI_DEFAULTS = {
    # colour of the source copy (color_jitter units) and RGB shift (fraction of 255).
    "hue": 0.06, "saturation": 0.15, "brightness": 0.1, "contrast": 0.1,
    "rgb_shift": 20.0 / 255.0,
    # probability of a frequency change of the source (downscale or sharpen).
    "frequency_prob": 0.5,
    # geometry of the source and the mask: scale in [1-scale, 1/(1-scale)], shifts.
    "scale": 0.05, "shift_x": 0.03, "shift_y": 0.015,
    # mask: forehead raise of the second hull kind, erode (<0) / dilate (>0) range in
    # landmark units (2 = image width), elastic warp, blur sigma range (fraction of size).
    "forehead": 0.3, "grow_min": -0.06, "grow_max": 0.02,
    "elastic_grid": 7, "elastic_jitter": 0.012,
    "blur_min": 0.01, "blur_max": 0.06,
    "ratios": (0.25, 0.5, 0.75, 1.0, 1.0, 1.0),
}

_NON_NEGATIVE = ("hue", "saturation", "brightness", "contrast", "rgb_shift", "frequency_prob",
                 "scale", "shift_x", "shift_y", "forehead", "elastic_jitter", "blur_min",
                 "blur_max")
JAW_BROWS = tuple(range(27))
INNER_FACE = tuple(range(17, 27)) + tuple(range(31, 36)) + tuple(range(48, 60))


def read_config(cfg: Any = None) -> tuple:
  """Validated SBI fields (defaults filled in) as a hashable tuple of (name, value)."""
  out = read_fields(cfg, SBI_DEFAULTS, "self-blend",
                    non_negative=_NON_NEGATIVE, numbers=("grow_min", "grow_max"))
  try:
    out["ratios"] = tuple(float(r) for r in out["ratios"])
    out["elastic_grid"] = int(out["elastic_grid"])
  except (TypeError, ValueError):
    raise UserError("self-blend ratios must be a list of numbers and elastic_grid an int") \
        from None
  if not out["ratios"] or not all(0 < r <= 1 for r in out["ratios"]):
    raise UserError(f"self-blend ratios must be in (0, 1], got {out['ratios']}")
  if out["scale"] >= 1 or out["frequency_prob"] > 1 or out["elastic_grid"] < 2:
    raise UserError("self-blend needs scale < 1, frequency_prob <= 1, elastic_grid >= 2")
  if out["grow_min"] > out["grow_max"] or out["blur_min"] > out["blur_max"]:
    raise UserError("self-blend ranges need grow_min <= grow_max and blur_min <= blur_max")
  return tuple(sorted(out.items()))


def gaussian_blur(images_BxHxWxC, sigma_px_B):
  """Per-image separable Gaussian blur (sigma in pixels, (B,)), truncated at 3 sigma.

  The weights of each output pixel are renormalised over the pixels inside the
  image (no dark border). sigma 0 leaves the image unchanged. float32 (B,H,W,C).
  """
  _, h, w, _ = images_BxHxWxC.shape

  def matrix(n):  # (B, n, n) row-normalised truncated Gaussian.
    t = jnp.arange(n, dtype=jnp.float32)
    d = t[None, :, None] - t[None, None, :]
    s = jnp.maximum(sigma_px_B, 1e-3)[:, None, None]
    k = jnp.where(jnp.abs(d) <= 3.0 * s, jnp.exp(-0.5 * jnp.square(d / s)), 0.0)
    return k / jnp.sum(k, axis=-1, keepdims=True)

  out = jnp.einsum("bij,bjwc->biwc", matrix(h), images_BxHxWxC,
                   precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum("bkw,biwc->bikc", matrix(w), out, precision=jax.lax.Precision.HIGHEST)


def hull_masks(landmarks_Bx68x2, size: int, kind_B, grow_B, forehead: float):
  """Hard 0/1 masks (B,size,size,1) of the landmark hull of kind 0 (jaw + brows: the
  hull of all 68 points), 1 (jaw + brows raised by `forehead`) or 2 (inner face:
  brows, lower nose, outer lip line), grown by `grow_B` (landmark units, (B,))."""
  lm = landmarks_Bx68x2.astype(jnp.float32)
  brows = lm[:, 17:27]
  raised = jnp.concatenate([lm[:, :17], brows + forehead * (brows - lm[:, 30:31])], axis=1)
  sets = jnp.stack([lm[:, jnp.asarray(JAW_BROWS)], raised, lm[:, jnp.asarray(INNER_FACE)]], 1)
  points = jnp.take_along_axis(sets, kind_B.reshape(-1, 1, 1, 1), axis=1)[:, 0]  # (B,27,2)
  c = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size * 2.0 - 1.0
  gy, gx = jnp.meshgrid(c, c, indexing="ij")
  pix = jnp.stack([gx.ravel(), gy.ravel()], axis=-1)
  d = face_hull.hull_signed_distance(points, pix)  # (B, P)
  return (d + grow_B[:, None] >= 0).astype(jnp.float32).reshape(-1, size, size, 1)


def _frequency(u_Bx3, images_BxHxWx3, prob: float):
  """With probability `prob` per image: half-resolution (2x2 box) down- and bilinear
  up-sampling, or sharpening x + a (x - blur(x)) with a in [0.5, 1.5], each half of
  the time. `u_Bx3`: uniform [0,1) draws (on, which, amount)."""
  b, h, w, c = images_BxHxWx3.shape
  small = images_BxHxWx3[:, :h - h % 2, :w - w % 2].reshape(b, h // 2, 2, w // 2, 2, c)
  down = sampling.interpolate_bilinear(jnp.mean(small, axis=(2, 4)), (h, w))
  amount = (0.5 + u_Bx3[:, 2]).reshape(b, 1, 1, 1)
  sharp = images_BxHxWx3 + amount * (images_BxHxWx3 - gaussian_blur(images_BxHxWx3,
                                                                     jnp.ones((b,))))
  on = (u_Bx3[:, 0] < prob).reshape(b, 1, 1, 1)
  which = (u_Bx3[:, 1] < 0.5).reshape(b, 1, 1, 1)
  return jnp.where(on, jnp.where(which, down, sharp), images_BxHxWx3)


def _source_colour(key, u_Bx6, images_BxHxWx3, c: dict):
  """Colour jitter, RGB shift (u[:, :3]) and frequency change (u[:, 3:]) of the source."""
  out = color_augment.color_jitter(key, images_BxHxWx3, c["hue"], c["saturation"],
                                   c["brightness"], c["contrast"])
  b = images_BxHxWx3.shape[0]
  shift = (2.0 * u_Bx6[:, :3] - 1.0).reshape(b, 1, 1, 3) * c["rgb_shift"]
  return jnp.clip(_frequency(u_Bx6[:, 3:], out + shift, c["frequency_prob"]), 0.0, 1.0)


def _scale_shift_matrices(u_Bx3, h: int, w: int, c: dict):
  """(B,3,3) output->source maps of a scale about the centre and a shift (pixels)."""
  lo, hi = 1.0 - c["scale"], 1.0 / (1.0 - c["scale"])
  s = lo + (hi - lo) * u_Bx3[:, 0]
  tx = (2.0 * u_Bx3[:, 1] - 1.0) * c["shift_x"] * w
  ty = (2.0 * u_Bx3[:, 2] - 1.0) * c["shift_y"] * h
  cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
  inv = 1.0 / s  # source = c + (p - c - t) / s
  zero, one = jnp.zeros_like(s), jnp.ones_like(s)
  rows = [jnp.stack([inv, zero, cx - (cx + tx) * inv], -1),
          jnp.stack([zero, inv, cy - (cy + ty) * inv], -1),
          jnp.stack([zero, zero, one], -1)]
  return jnp.stack(rows, axis=1)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _self_blend(key, images_BxHxWx3, landmarks_Bx68x2, cfg: tuple):
  c = dict(cfg)
  b, h, w, _ = images_BxHxWx3.shape
  k_u, k_colour, k_elastic = jax.random.split(key, 3)
  # One draw for every per-image scalar (fewer RNG kernels to compile): hull kind, grow,
  # source colour (6), scale/shift (3), blur sigma, blend ratio.
  u = jax.random.uniform(k_u, (b, 13), jnp.float32)
  x = images_BxHxWx3.astype(jnp.float32)
  kind = jnp.minimum((u[:, 0] * 3).astype(jnp.int32), 2)
  grow = c["grow_min"] + (c["grow_max"] - c["grow_min"]) * u[:, 1]
  mask = hull_masks(landmarks_Bx68x2, h, kind, grow, c["forehead"])
  source = _source_colour(k_colour, u[:, 2:8], x, c)
  mats = _scale_shift_matrices(u[:, 8:11], h, w, c)
  grid = jnp.broadcast_to(warp.pixel_grid(h, w)[None], (b, h, w, 2))
  moved = warp.remap(jnp.concatenate([source, mask], -1), warp.apply_homogeneous(mats, grid),
                     "edge")
  source, mask = moved[..., :3], moved[..., 3:]
  if c["elastic_jitter"] > 0:
    mask = warp.random_warp(k_elastic, mask, c["elastic_grid"], c["elastic_jitter"],
                            mode="zeros")
  sigma = (c["blur_min"] + (c["blur_max"] - c["blur_min"]) * u[:, 11]) * h
  mask = gaussian_blur(mask, sigma)
  peak = jnp.max(mask, axis=(1, 2, 3), keepdims=True)
  mask = jnp.where(peak > 0, mask / jnp.where(peak > 0, peak, 1.0), 0.0)
  n = len(c["ratios"])
  ratio = jnp.asarray(c["ratios"], jnp.float32)[jnp.minimum((u[:, 12] * n).astype(jnp.int32),
                                                            n - 1)]
  mask = jnp.clip(mask * ratio.reshape(b, 1, 1, 1), 0.0, 1.0)
  fake = mask * source + (1.0 - mask) * x
  return fake, mask


def self_blend(key, images_BxHxWx3, landmarks_Bx68x2, cfg: Any = None):
  """Self-blended fakes of real faces (see the module docstring).

  Args:
    key: jax.random key (the same key gives the same fakes).
    images_BxHxWx3: float32 (B,H,W,3) in [0,1], square crops (H == W).
    landmarks_Bx68x2: float32 (B,68,2), (x, y) in [-1,1].
    cfg: dict / ConfigDict of `SBI_DEFAULTS` fields (missing = default).

  Returns:
    (fake float32 (B,H,W,3) in [0,1], mask float32 (B,H,W,1) in [0,1]): the blend
    weight of the source at each pixel; fake == images exactly where mask == 0.
  """
  if images_BxHxWx3.ndim != 4 or images_BxHxWx3.shape[-1] != 3:
    raise UserError(f"self_blend expects (B,H,W,3) images, got {images_BxHxWx3.shape}")
  if images_BxHxWx3.shape[1] != images_BxHxWx3.shape[2]:
    raise UserError(f"self_blend expects square crops, got {images_BxHxWx3.shape[1:3]}")
  if landmarks_Bx68x2.shape != (images_BxHxWx3.shape[0], 68, 2):
    raise UserError(f"self_blend expects (B,68,2) landmarks, got {landmarks_Bx68x2.shape}")
  return _self_blend(key, images_BxHxWx3, landmarks_Bx68x2, read_config(cfg))
