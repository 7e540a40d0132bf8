"""Checks a training config and its data before the loop creates anything.

`validate(config)` runs first in `train_and_evaluate`: a bad config or missing data
raises a one-line `UserError` before the run folder, checkpoints or prepared datasets
exist. Every check is cheap (arithmetic on the config and a listing of the data
folders); nothing is traced or compiled.
"""
import math
import os
from typing import Callable

import jax

from deepjax.data import images
from deepjax.errors import UserError

SWAP_TASKS = ("ae", "vae", "gan")
_MAX_SIZE = 4096


def validate(config) -> None:
  """Raises UserError for a config the loop cannot train; creates nothing."""
  check_batch_size(config)
  check_image_size(config)
  check_data(config)


def device_count(config) -> int:
  """Devices of the training mesh: `config.mesh_devices`, or all when it is 0."""
  return int(config.get("mesh_devices", 0) or 0) or jax.device_count()


def check_batch_size(config) -> None:
  """`batch_size` (the global batch) is a positive multiple of the mesh's device count."""
  bs, n = config.batch_size, device_count(config)
  if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0 or bs % n:
    raise UserError(f"config.batch_size is {bs}; the batch size must be a positive multiple "
                    f"of the device count ({n})")


def _swap_fits(model_cfg) -> Callable[[int], bool]:
  """Face-swap models halve the side once per encoder layer and double it back."""
  div = 2 ** len(tuple(model_cfg.encoder_features))
  return lambda s: s % div == 0


def _motion_fits(model_cfg) -> Callable[[int], bool]:
  """FOMM: each hourglass (keypoint detector, dense motion) takes floor(side x its
  scale_factor) divisible by 2**num_blocks; the generator's down blocks halve the side."""
  rules = []
  for net in ("kp_detector", "dense_motion"):
    sub = model_cfg[net]
    rules.append((float(sub.get("scale_factor", 1.0)), 2 ** int(sub["num_blocks"])))
  rules.append((1.0, 2 ** int(model_cfg["generator"].get("num_down_blocks", 2))))
  return lambda s: all(math.floor(s * sf) > 0 and math.floor(s * sf) % div == 0
                       for sf, div in rules)


def _tpsmm_fits(model_cfg) -> Callable[[int], bool]:
  """Thin-plate-spline motion: the dense motion's hourglass takes floor(side x scale_factor)
  divisible by 2**num_blocks, exactly (its upsampled occlusion masks must meet the
  inpainting network's maps); the inpainting network's down blocks halve the side."""
  dense = model_cfg["dense_motion"]
  sf, div = float(dense.get("scale_factor", 0.25)), 2 ** int(dense["num_blocks"])
  gen_div = 2 ** int(model_cfg["generator"]["num_down_blocks"])
  return lambda s: (s * sf == math.floor(s * sf) > 0 and math.floor(s * sf) % div == 0
                    and s % gen_div == 0)


def _size_rule(config):
  """(predicate of supported image sides, model description) for the config's task."""
  if config.task in SWAP_TASKS:
    return _swap_fits(config.model), f"the {config.model.get('arch', '')!r} face-swap model"
  if config.task == "motion" and config.model.get("name", "fomm") == "fomm":
    return _motion_fits(config.model), "the first-order motion model"
  if config.task == "motion" and config.model.get("name") == "tpsmm":
    return _tpsmm_fits(config.model), "the thin-plate-spline motion model"
  return None, ""  # other models: no known rule (their own shape checks apply)


def check_image_size(config) -> None:
  """`data.size` is a side the config's model maps back to itself."""
  size = config.data.get("size", None)
  if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= _MAX_SIZE:
    raise UserError(f"config.data.size is {size!r}; it must be an image side in pixels "
                    f"(1 to {_MAX_SIZE})")
  fits, what = _size_rule(config)
  if fits is None or fits(size):
    return
  below = next((s for s in range(size - 1, 0, -1) if fits(s)), None)
  above = next((s for s in range(size + 1, _MAX_SIZE + 1) if fits(s)), None)
  near = " or ".join(str(s) for s in (below, above) if s is not None)
  raise UserError(f"config.data.size is {size}, which {what} of this config does not "
                  f"support; the nearest sides it supports are {near or 'none'}")


def check_data(config) -> None:
  """Face folders of `data.source="folders"` exist and hold images."""
  if config.task not in SWAP_TASKS or config.data.get("source", "") != "folders":
    return
  for side in ("a", "b"):
    folder = str(config.data.get(side, "") or "")
    if not folder.strip():
      raise UserError(f"config.data.{side} is empty: set the face folder of identity "
                      f"{side.upper()}")
    where = f"the face folder of identity {side.upper()} (config.data.{side})"
    if not os.path.isdir(folder):
      raise UserError(f"{where} is not a folder: {os.path.abspath(folder)}")
    if not images.list_images(folder):
      raise UserError(f"no image files in {where}: {os.path.abspath(folder)}")
