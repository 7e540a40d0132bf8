"""Augmentation of a detector's inputs (jit-able): geometry, colour and image quality.

A detector trained on a handful of people learns those people; what should transfer to
new people is the blending and generation artefacts. Jittering what the artefacts do
not depend on — framing, colour, sharpness and resolution — on every input alike (real
crops, self-blends and generated fakes, so no class gets a transformation of its own)
takes those cues away. The recipe follows what SBI and DeepfakeBench train with (flip,
colour shifts, compression-like loss of detail), with JAX ops in place of
albumentations: H.264/JPEG loss is approximated by a blur or a down-and-up resize.

Fields (`DETECT_AUGMENT_DEFAULTS`, all zero = off; configs/detect.py sets them):
  rotation_deg, zoom, shift: random affine (`deepjax.ops.augment`), applied to the mask too;
  hue, saturation, brightness, contrast: `color_augment.color_jitter`;
  quality_prob: probability that an image loses detail, half of those by a Gaussian
    blur of sigma U(0, blur_max) pixels, half by a resize to one of four sizes from
    down_min to 1 of its own and back;
  noise: Gaussian pixel noise of std U(0, noise) (0..1 units) on every image.

Images float32 (B,H,W,3) in [0,1]; masks float32 (B,H,W,1).
"""
from typing import Any

import jax
import jax.numpy as jnp

from deepjax.configs_lib import read_fields
from deepjax.errors import UserError
from deepjax.ops import augment, color_augment
from deepjax.ops.self_blend import gaussian_blur

DETECT_AUGMENT_DEFAULTS = {
    "rotation_deg": 0.0, "zoom": 0.0, "shift": 0.0,
    "hue": 0.0, "saturation": 0.0, "brightness": 0.0, "contrast": 0.0,
    "quality_prob": 0.0, "blur_max": 1.5, "down_min": 0.5,
    "noise": 0.0,
}


def read_config(cfg: Any = None) -> tuple:
  """Validated fields (defaults filled in) as a hashable tuple of (name, float)."""
  out = read_fields(cfg, DETECT_AUGMENT_DEFAULTS, "detector augmentation",
                    non_negative=tuple(DETECT_AUGMENT_DEFAULTS))
  if out["quality_prob"] > 1 or not 0 < out["down_min"] <= 1 or out["zoom"] >= 1:
    raise UserError("detector augmentation needs quality_prob <= 1, 0 < down_min <= 1 and "
                    "zoom < 1")
  return tuple(sorted(out.items()))


def _affine(key, images_BxHxWx3, masks_BxHxWx1, c: dict):
  """`deepjax.ops.augment.augment` (affine only, no flip) of images and masks together."""
  geometry = {"warp": False, "rotation_deg": c["rotation_deg"], "zoom": c["zoom"],
              "shift": c["shift"], "flip_prob": 0.0, "mode": "edge"}
  both = augment.augment(key, jnp.concatenate([images_BxHxWx3, masks_BxHxWx1], -1), geometry)
  return both[..., :3], both[..., 3:]


def _quality(key, images_BxHxWx3, c: dict):
  """Blur or down-and-up resize of a `quality_prob` share of the images."""
  b, h, w, _ = images_BxHxWx3.shape
  u = jax.random.uniform(key, (b, 3))
  blurred = gaussian_blur(images_BxHxWx3, u[:, 1] * c["blur_max"])
  # Down-and-up resize to one of four sizes between down_min and 1 (static shapes).
  factors = [c["down_min"] + (1.0 - c["down_min"]) * i / 4 for i in range(4)]
  choice = jnp.minimum((u[:, 2] * 4).astype(jnp.int32), 3).reshape(b, 1, 1, 1)
  resized = images_BxHxWx3
  for i, f in enumerate(factors):
    small = jax.image.resize(images_BxHxWx3, (b, max(1, round(h * f)), max(1, round(w * f)), 3),
                             "linear", antialias=True)
    resized = jnp.where(choice == i, jax.image.resize(small, (b, h, w, 3), "linear"), resized)
  which = u[:, 0].reshape(b, 1, 1, 1)
  out = jnp.where(which < 0.5 * c["quality_prob"], blurred, images_BxHxWx3)
  return jnp.where((which >= 0.5 * c["quality_prob"]) & (which < c["quality_prob"]), resized,
                   out)


def detect_augment(key, images_BxHxWx3, masks_BxHxWx1, cfg: tuple):
  """(images, masks) after the random affine, colour jitter, quality loss and noise of
  `cfg` (a `read_config` tuple); all fields zero returns the inputs unchanged."""
  c = dict(cfg)
  k_affine, k_color, k_quality, k_noise = jax.random.split(key, 4)
  x, m = images_BxHxWx3, masks_BxHxWx1
  if c["rotation_deg"] or c["zoom"] or c["shift"]:
    x, m = _affine(k_affine, x, m, c)
  if c["hue"] or c["saturation"] or c["brightness"] or c["contrast"]:
    x = color_augment.color_jitter(k_color, x, c["hue"], c["saturation"], c["brightness"],
                                   c["contrast"])
  if c["quality_prob"]:
    x = _quality(k_quality, x, c)
  if c["noise"]:
    k_std, k_px = jax.random.split(k_noise)
    std = jax.random.uniform(k_std, (x.shape[0], 1, 1, 1)) * c["noise"]
    x = jnp.clip(x + std * jax.random.normal(k_px, x.shape), 0.0, 1.0)
  return x, m
