"""Thin-plate-spline motion (Zhao & Zhang, CVPR 2022): keypoints, background and dense motion.

NHWC versions of the reference's modules/keypoint_detector.py, modules/bg_motion_predictor.py
and modules/dense_motion.py (github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model). Names match
the reference's state dicts (`fg_encoder`, `bg_encoder`, `hourglass`, `maps`, `up`,
`occlusion`) so its checkpoints map onto them (deepjax.convert.tpsmm).

Keypoint dicts are {"value": (B, K*5, 2)}: K thin-plate-spline transformations of 5
control points each, (x, y) in [-1, 1] in deepjax.ops.keypoints' convention (the
reference's `fg_kp`).
"""
import math
from typing import Any, Dict, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.models.hourglass import Hourglass, UpBlock2d, anti_alias_interpolate, conv2d
from deepjax.models.motion.dense_motion import deform_source, heatmap_representation
from deepjax.models.motion.resnet import ResNet18
from deepjax.ops import keypoints as kpo
from deepjax.ops import tps

CONTROL_POINTS = 5
# The reference's number of multi-resolution occlusion masks.
OCCLUSION_NUM = 4


class TPSKeypointDetector(nn.Module):
  """Image (B, H, W, C) float32 [0, 1] -> {"value": (B, num_tps*5, 2)}: a ResNet-18
  (`fg_encoder`) regressing num_tps*5*2 numbers, sigmoid, mapped to [-1, 1].

  `groups`: as ResNet18 (several detector calls batched in one, training)."""
  num_tps: int

  @nn.compact
  def __call__(self, image_BxHxWxC, train: bool = False, groups: int = 1):
    b = image_BxHxWxC.shape[0]
    raw = ResNet18(self.num_tps * CONTROL_POINTS * 2, name="fg_encoder")(
        image_BxHxWxC, train, groups)
    return {"value": (jax.nn.sigmoid(raw) * 2.0 - 1.0).reshape(b, self.num_tps * CONTROL_POINTS,
                                                               2)}


def _identity_affine_bias(key, shape, dtype=jnp.float32):
  del key
  return jnp.asarray([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype).reshape(shape)


class BGMotionPredictor(nn.Module):
  """(source, driving) (B, H, W, C) -> (B, 3, 3) affine background motion (last row
  [0, 0, 1]) mapping driving coordinates to source coordinates: a ResNet-18 (`bg_encoder`) on
  the 2C-channel concatenation whose `fc` starts at zero weights and the identity bias."""

  @nn.compact
  def __call__(self, source_BxHxWxC, driving_BxHxWxC, train: bool = False, groups: int = 1):
    b = source_BxHxWxC.shape[0]
    x = jnp.concatenate([source_BxHxWxC, driving_BxHxWxC], axis=-1)
    pred = ResNet18(6, fc_kernel_init=nn.initializers.zeros,
                    fc_bias_init=_identity_affine_bias, name="bg_encoder")(x, train, groups)
    last = jnp.broadcast_to(jnp.asarray([[[0.0, 0.0, 1.0]]], pred.dtype), (b, 1, 3))
    return jnp.concatenate([pred.reshape(b, 2, 3), last], axis=1)


def tps_transformations(spatial_size, kp_driving, kp_source, bg_param_Bx3x3=None):
  """Eq. 2 and the background: K+1 sampling grids (B, K+1, h, w, 2) into the source.

  Index 0 is the identity grid (moved by the affine `bg_param` when given, in homogeneous
  coordinates); 1..K the thin-plate splines fitted to map each group of 5 driving control
  points onto the source's.
  """
  h, w = spatial_size
  kd, ks = kp_driving["value"], kp_source["value"]
  b = kd.shape[0]
  kd = kd.reshape(b, -1, CONTROL_POINTS, 2)
  ks = ks.reshape(b, -1, CONTROL_POINTS, 2)
  grid_HxWx2 = kpo.make_coordinate_grid(h, w)
  fitted = tps.tps_fit(kd, ks)
  to_source = tps.tps_fit_warp(fitted, grid_HxWx2.reshape(h * w, 2)).reshape(b, -1, h, w, 2)
  identity = jnp.broadcast_to(grid_HxWx2[None], (b, h, w, 2))
  if bg_param_Bx3x3 is not None:
    homo = jnp.concatenate([identity, jnp.ones((b, h, w, 1), identity.dtype)], axis=-1)
    moved = jnp.einsum("bij,bhwj->bhwi", bg_param_Bx3x3, homo)
    identity = moved[..., :2] / moved[..., 2:3]
  return jnp.concatenate([identity[:, None], to_source], axis=1)


def dropout_softmax(logits_BxhxwxM, p, uniform_BxM):
  """Eq. 7-8 of the paper as the reference computes it (training, TPS dropout).

  Transformation m >= 1 of sample b is dropped when uniform[b, m] >= 1 - p (index 0, the
  background, never); the kept ones get exp(x - max) / (sum of the kept + 1e-6). (The
  reference also divides its logits by 1 - p after taking the exponential, which changes
  nothing; so nothing is rescaled here either.)
  """
  keep = (uniform_BxM < (1.0 - p)).astype(logits_BxhxwxM.dtype)
  keep = keep.at[:, 0].set(1.0)[:, None, None, :]
  x = logits_BxhxwxM - jnp.max(logits_BxhxwxM, axis=-1, keepdims=True)
  e = jnp.exp(x) * keep
  return e / (jnp.sum(e, axis=-1, keepdims=True) + 1e-6)


class TPSDenseMotionNetwork(nn.Module):
  """K TPS transformations + background affine -> optical flow and occlusion masks.

  Call: (source_BxHxWxC, kp_driving, kp_source, bg_param (B, 3, 3) or None, train,
  dropout_p, dropout_uniform) -> dict with
    "deformed_source" (B, K+1, h, w, C): the downscaled source under each transformation,
    "contribution_maps" (B, h, w, K+1): softmax weights of the transformations,
    "deformation" (B, h, w, 2): the blended sampling grid into the source (optical flow),
    "occlusion_map": list of (B, h_i, w_i, 1) in (0, 1), coarsest first (4 of them, at
      (h, w) / 2 ... up to (H, W), with `multi_mask`; else one at (h, w)),
  where (h, w) = (H, W) * scale_factor. With `dropout_uniform` (B, K+1) uniform [0, 1)
  draws (training) the softmax is the reference's TPS dropout (`dropout_softmax`) with
  probability `dropout_p` (may be traced).
  """
  block_expansion: int
  num_blocks: int
  max_features: int
  num_tps: int
  num_channels: int
  scale_factor: float = 0.25
  bg: bool = False
  multi_mask: bool = True
  kp_variance: float = 0.01

  @nn.compact
  def __call__(self, source_BxHxWxC, kp_driving, kp_source, bg_param=None,
               train: bool = False, dropout_p: Any = 0.0,
               dropout_uniform: Optional[jax.Array] = None) -> Dict[str, Any]:
    source = anti_alias_interpolate(source_BxHxWxC, self.scale_factor)
    b, h, w, c = source.shape
    m = self.num_tps + 1
    heat = heatmap_representation((h, w), kp_driving, kp_source, self.kp_variance)
    transformations = tps_transformations((h, w), kp_driving, kp_source, bg_param)
    deformed = deform_source(source, transformations, align_corners=True)
    x = jnp.concatenate(
        [heat, deformed.transpose(0, 2, 3, 1, 4).reshape(b, h, w, m * c)], axis=-1)
    prediction = Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                           norm="instance", all_outputs=True, name="hourglass")(x, train)
    logits = conv2d(m, 7, 3, "maps")(prediction[-1])
    contribution = jax.nn.softmax(logits, axis=-1)
    if dropout_uniform is not None:  # dropout_p == 0: off (the plain softmax, as the reference)
      contribution = jnp.where(dropout_p > 0, dropout_softmax(logits, dropout_p, dropout_uniform),
                               contribution)
    deformation = jnp.einsum("bhwm,bmhwd->bhwd", contribution, transformations)
    occlusion = []
    if self.multi_mask:
      up_nums = int(math.log(1 / self.scale_factor, 2))
      for i in range(OCCLUSION_NUM - up_nums):
        occlusion.append(jax.nn.sigmoid(conv2d(1, 7, 3, f"occlusion_{i}")(
            prediction[up_nums - OCCLUSION_NUM + i])))
      feat = prediction[-1]
      for i in range(up_nums):
        feat = UpBlock2d(feat.shape[-1] // 2, norm="instance", name=f"up_{i}")(feat, train)
        occlusion.append(jax.nn.sigmoid(conv2d(
            1, 7, 3, f"occlusion_{i + OCCLUSION_NUM - up_nums}")(feat)))
    else:
      occlusion.append(jax.nn.sigmoid(conv2d(1, 7, 3, "occlusion_0")(prediction[-1])))
    return {"deformed_source": deformed, "contribution_maps": contribution,
            "deformation": deformation, "occlusion_map": occlusion}
