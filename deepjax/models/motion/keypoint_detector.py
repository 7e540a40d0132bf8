"""Unsupervised keypoint detector of the first-order motion model (modules/keypoint_detector.py).

Names match the reference (`predictor`, `kp`, `jacobian`) for checkpoint import.
"""
import flax.linen as nn
import jax.numpy as jnp

from deepjax.models.hourglass import Hourglass, anti_alias_interpolate, conv2d
from deepjax.ops import keypoints as kpo


def _identity_jacobian_bias(num_maps: int):
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.tile(jnp.asarray([1.0, 0.0, 0.0, 1.0], dtype), num_maps).reshape(shape)
  return init


class KeypointDetector(nn.Module):
  """Image -> K keypoints (x, y) in [-1, 1] and their 2x2 local Jacobians.

  Pipeline: anti-aliased downscale by `scale_factor` -> Hourglass -> `kp` conv (7x7,
  padding `pad`) -> softmax over space of logits / temperature -> expected coordinates;
  with `estimate_jacobian`, a `jacobian` conv (7x7, 4 maps per keypoint, or 4 shared with
  `single_jacobian_map`) starts at zero weights and bias [1, 0, 0, 1] (identity) and is
  averaged under each heatmap.

  Call: (image_BxHxWxC float32 [0, 1], train, groups=1) -> {"value": (B, K, 2),
  "jacobian": (B, K, 2, 2) when estimate_jacobian}. H * scale_factor must be divisible by
  2**num_blocks. `groups` G > 1 in training: the batch is G interleaved sub-batches whose
  BatchNorm statistics are kept apart (hourglass.BatchNorm), i.e. G detector calls in one.
  """
  block_expansion: int
  num_kp: int
  num_channels: int
  max_features: int
  num_blocks: int
  temperature: float
  estimate_jacobian: bool = False
  scale_factor: float = 1.0
  single_jacobian_map: bool = False
  pad: int = 0

  @nn.compact
  def __call__(self, image_BxHxWxC, train: bool = False, groups: int = 1):
    x = anti_alias_interpolate(image_BxHxWxC, self.scale_factor)
    feature_map = Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                            norm_groups=groups if train else 1, name="predictor")(x, train)
    logits = conv2d(self.num_kp, 7, self.pad, "kp")(feature_map)
    heatmap = kpo.spatial_softmax(logits, self.temperature)
    out = {"value": kpo.heatmap_to_keypoints(heatmap)}
    if self.estimate_jacobian:
      num_maps = 1 if self.single_jacobian_map else self.num_kp
      jacobian_map = conv2d(4 * num_maps, 7, self.pad, "jacobian",
                            kernel_init=nn.initializers.zeros,
                            bias_init=_identity_jacobian_bias(num_maps))(feature_map)
      out["jacobian"] = kpo.heatmap_to_jacobians(heatmap, jacobian_map)
    return out
