"""VGG19 feature extractor for the perceptual loss of first-order motion (modules/model.py).

Returns the activations after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 of
torchvision's `vgg19().features` (layers 0-1, 2-6, 7-11, 12-20, 21-29), on inputs
normalised with ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).

Weights are never downloaded: `load_vgg19_params(path)` reads a user-supplied `.npz`
(`load_for_loss` is the same for a loss term, with a warning when no file is set)
holding torchvision's parameter names and layouts, i.e. keys `features.{i}.weight`
(O, I, 3, 3) and `features.{i}.bias` (O,) for the 13 convolutions
i in {0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28} (the `features.` prefix may be
omitted). For example, on a machine with torchvision and its weights:

  import numpy as np, torchvision
  sd = torchvision.models.vgg19(weights="IMAGENET1K_V1").features.state_dict()
  np.savez("vgg19.npz", **{k: v.numpy() for k, v in sd.items()})
"""
import os
from typing import Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from deepjax.errors import UserError
from deepjax.ops import conv, reductions

# (torchvision features index, in channels, out channels); "M" = 2x2 max pool.
_LAYERS = [(0, 3, 64), (2, 64, 64), "M", (5, 64, 128), (7, 128, 128), "M",
           (10, 128, 256), (12, 256, 256), (14, 256, 256), (16, 256, 256), "M",
           (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512), "M", (28, 512, 512)]
# Feature outputs are taken after these convolutions' ReLUs (relu1_1 ... relu5_1).
_OUTPUT_AFTER = (0, 5, 10, 19, 28)
# Convolutions on maps of at most this many pixels run as im2col + matmul: XLA:CPU's
# convolution (and its input gradient) is many times slower there (measured on VGG19's
# perceptual-loss gradient at 64/32/16 px: 18.6 s -> 4.0 s with this and `_max_pool2`).
IM2COL_MAX_PIXELS = 64
CONV_INDICES = tuple(layer[0] for layer in _LAYERS if layer != "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VggParams = Dict[str, Dict[str, jax.Array]]



def vgg19_param_shapes() -> Dict[str, tuple]:
  """torchvision names -> torch shapes, for the 13 convolutions."""
  shapes = {}
  for layer in _LAYERS:
    if layer == "M":
      continue
    i, cin, cout = layer
    shapes[f"features.{i}.weight"] = (cout, cin, 3, 3)
    shapes[f"features.{i}.bias"] = (cout,)
  return shapes


def vgg19_params_from_torch(state: Dict[str, np.ndarray]) -> VggParams:
  """torchvision-named arrays -> {"conv{i}": {"kernel": HWIO, "bias"}} (float32).

  Raises UserError naming the first missing or mis-shaped entry.
  """
  state = {(k if k.startswith("features.") else "features." + k): v for k, v in state.items()}
  params = {}
  for name, shape in vgg19_param_shapes().items():
    if name not in state:
      raise UserError(f"VGG19 weights: missing '{name}' (expected torchvision vgg19 names)")
    value = np.asarray(state[name], np.float32)
    if value.shape != shape:
      raise UserError(f"VGG19 weights: '{name}' has shape {value.shape}, expected {shape}")
    i = int(name.split(".")[1])
    entry = params.setdefault(f"conv{i}", {})
    if name.endswith("weight"):
      entry["kernel"] = jnp.asarray(value.transpose(2, 3, 1, 0))
    else:
      entry["bias"] = jnp.asarray(value)
  return params


def load_vgg19_params(path: str) -> VggParams:
  """Reads VGG19 weights from an `.npz` file (see the module docstring for the keys)."""
  if not path or not os.path.isfile(path):
    raise UserError(f"VGG19 weights file not found: {path!r}")
  try:
    with np.load(path) as data:
      state = {k: data[k] for k in data.files}
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read VGG19 weights from {path!r}: {e}") from None
  return vgg19_params_from_torch(state)


def load_for_loss(path: str, config_key: str, without: str) -> Optional[VggParams]:
  """VGG19 parameters for a perceptual loss term that is on, or None without a weights file.

  `path`: the user's `.npz` (empty: none); `config_key` names the setting and `without`
  says what the caller does without weights, both for the warning logged then. Raises
  UserError for a missing or malformed file.
  """
  if not path:
    logging.warning("perceptual loss: no VGG19 weights file (%s is empty; see "
                "deepjax/models/vgg.py): %s", config_key, without)
    return None
  params = load_vgg19_params(path)
  logging.info("perceptual loss: VGG19 weights from %s", path)
  return params


def random_vgg19_params(key) -> VggParams:
  """Random weights with the right shapes (for tests and benchmarks only)."""
  params = {}
  for layer in _LAYERS:
    if layer == "M":
      continue
    i, cin, cout = layer
    key, sub = jax.random.split(key)
    std = np.sqrt(2.0 / (9 * cin))
    params[f"conv{i}"] = {"kernel": std * jax.random.normal(sub, (3, 3, cin, cout), jnp.float32),
                          "bias": jnp.zeros((cout,), jnp.float32)}
  return params


def _max_pool2(x_BxHxWxC):
  """2x2 max pool, stride 2 (odd remainders dropped), as a reshape + max.

  Equal to torch's MaxPool2d(2) in value; XLA:CPU's reduce_window gradient
  (select-and-scatter) is far slower than the gradient of this form.
  """
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def vgg19_features(params: VggParams, image_BxHxWx3) -> List[jax.Array]:
  """Five feature maps (relu1_1 ... relu5_1) of an RGB image in [0, 1] (NHWC float32)."""
  mean = jnp.asarray(IMAGENET_MEAN, jnp.float32).reshape(1, 1, 1, 3)
  std = jnp.asarray(IMAGENET_STD, jnp.float32).reshape(1, 1, 1, 3)
  x = (image_BxHxWx3 - mean) / std
  outs = []
  for layer in _LAYERS:
    if layer == "M":
      x = _max_pool2(x)
      continue
    i = layer[0]
    p = params[f"conv{i}"]
    x = conv.conv2d(x, p["kernel"], (1, 1), small_maps=IM2COL_MAX_PIXELS)
    x = jax.nn.relu(reductions.add_channel_bias(x, p["bias"]))
    if i in _OUTPUT_AFTER:
      outs.append(x)
      if i == _OUTPUT_AFTER[-1]:
        break
  return outs
