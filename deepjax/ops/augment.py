"""Config-driven augmentation for face-swap training: `augment_pair`, `augment`.

Built on `deepjax.ops.warp` (random affine / flip, faceswap-style random warp,
one bilinear resampling per output). Face-swap training feeds the decoder warped
inputs and asks for unwarped targets: `augment_pair` gives exactly that pair.

Configs are plain dicts or ml_collections ConfigDicts with python scalars
(fields and defaults: `AUGMENT_DEFAULTS`); close over them when jitting, e.g.
`jax.jit(lambda k, x: augment(k, x, cfg))`. Images NHWC float32 in [0, 1].
"""
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.configs_lib import read_fields
from deepjax.errors import UserError
from deepjax.ops.warp import (BORDER_MODES, DEFAULT_WARP_JITTER, apply_homogeneous, pixel_grid,
                              random_affine_matrices, random_warp_field, remap,
                              transform_landmarks)

AUGMENT_DEFAULTS = {
    "warp": True,
    "warp_jitter": DEFAULT_WARP_JITTER,
    "warp_grid_size": 5,
    "rotation_deg": 10.0,
    "zoom": 0.05,
    "shift": 0.05,
    "flip_prob": 0.5,
    "mode": "edge",
}


def _read_cfg(cfg: Any) -> tuple:
  """Reads augmentation fields from a dict/ConfigDict (defaults filled in), validated.

  Returns a hashable tuple of (name, python value) pairs, usable as a static jit argument.
  """
  out = read_fields(cfg, AUGMENT_DEFAULTS, "augmentation",
                    non_negative=("warp_jitter", "rotation_deg", "zoom", "shift", "flip_prob"))
  if out["flip_prob"] > 1:
    raise UserError(f"augmentation flip_prob must be in [0, 1], got {out['flip_prob']!r}")
  if out["zoom"] >= 1:
    raise UserError(f"augmentation zoom must be < 1, got {out['zoom']!r}")
  if out["mode"] not in BORDER_MODES:
    raise UserError(f"augmentation mode must be one of {BORDER_MODES}, got {out['mode']!r}")
  grid = out["warp_grid_size"]
  if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
    raise UserError(f"augmentation warp_grid_size must be an int >= 2, got {grid!r}")
  out["warp_grid_size"] = int(grid)
  out["warp"] = bool(out["warp"])
  return tuple(sorted(out.items()))


def _is_identity(c: dict) -> bool:
  return not c["warp"] and all(
      c[n] == 0 for n in ("rotation_deg", "zoom", "shift", "flip_prob"))


@functools.partial(jax.jit, static_argnames=("cfg", "want_targets"))
def _augment_impl(key, images_BxHxWxC, landmarks_BxNx2, cfg: tuple, want_targets: bool):
  """(inputs, targets or None, landmarks or None) with one resampling per output."""
  c = dict(cfg)
  b, h, w, _ = images_BxHxWxC.shape
  k_affine, k_warp = jax.random.split(key)
  mats = random_affine_matrices(k_affine, b, h, w, c["rotation_deg"], c["zoom"], c["shift"],
                                c["flip_prob"])
  grid = jnp.broadcast_to(pixel_grid(h, w)[None], (b, h, w, 2))

  def sample(points_BxHxWx2):
    return remap(images_BxHxWxC, apply_homogeneous(mats, points_BxHxWx2), c["mode"])

  targets = sample(grid) if (want_targets or not c["warp"]) else None
  if c["warp"]:
    field = random_warp_field(k_warp, b, h, w, c["warp_grid_size"], c["warp_jitter"])
    # Warp in the output frame, then map through the affine: one resampling in all.
    inputs = sample(grid + field)
  else:
    inputs = targets
  lms = None if landmarks_BxNx2 is None else transform_landmarks(mats, landmarks_BxNx2, h, w)
  return inputs, targets, lms


def augment_pair(key, images_BxHxWxC, cfg: Mapping | Any):
  """(warped inputs, unwarped targets) for face-swap training.

  Targets get the random affine/flip; inputs get the same affine/flip plus the
  random warp (when cfg.warp), computed as one resampling of the original.
  With key split as (k_affine, k_warp) = jax.random.split(key):
  targets == random_affine(k_affine, images, ...) and inputs ==
  random_warp(k_warp, targets, ...) up to interpolation/border effects (exact
  when the affine part is a pure flip).

  Args:
    key: jax.random key.
    images_BxHxWxC: float32 (B, H, W, C) in [0, 1].
    cfg: dict or ConfigDict with optional fields (python values) warp (bool),
      warp_jitter, warp_grid_size, rotation_deg, zoom, shift, flip_prob, mode
      (see AUGMENT_DEFAULTS for the defaults).

  Returns:
    (inputs, targets), both float32 (B, H, W, C).
  """
  inputs, targets, _ = augment_pair_with_landmarks(key, images_BxHxWxC, None, cfg)
  return inputs, targets


def augment_pair_with_landmarks(key, images_BxHxWxC, landmarks_BxNx2, cfg):
  """`augment_pair` that also moves landmarks with the targets' affine/flip.

  Args:
    landmarks_BxNx2: float (B, N, 2) (x, y) in [-1, 1], or None.

  Returns:
    (inputs, targets, target_landmarks (B, N, 2) in [-1, 1] or None when
    landmarks_BxNx2 is None). Note: a horizontal flip mirrors positions only;
    it does not swap left/right landmark indices.
  """
  c = _read_cfg(cfg)
  if _is_identity(dict(c)):
    return images_BxHxWxC, images_BxHxWxC, landmarks_BxNx2
  return _augment_impl(key, images_BxHxWxC, landmarks_BxNx2, cfg=c, want_targets=True)


def augment(key, images_BxHxWxC, cfg):
  """Random affine/flip then (if cfg.warp) random warp; returns float32 (B, H, W, C).

  Equal to `augment_pair(key, images, cfg)[0]` (one bilinear resampling). All
  magnitudes 0 and warp off returns the images unchanged. cfg as in `augment_pair`.
  """
  c = _read_cfg(cfg)
  if _is_identity(dict(c)):
    return images_BxHxWxC
  return _augment_impl(key, images_BxHxWxC, None, cfg=c, want_targets=False)[0]
