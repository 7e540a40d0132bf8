"""Occlusion-aware generator of the first-order motion model (modules/generator.py), NHWC.

Names match the reference (`first`, `down_blocks_i`, `bottleneck/r{i}`, `up_blocks_i`,
`final`, `dense_motion_network`) for checkpoint import (flax names the list attributes
`down_blocks_0`, ...).
"""
from typing import Any, Dict, Mapping, Optional

import flax.linen as nn
import jax

from deepjax.models.hourglass import (Conv2d, DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d,
                                      hourglass_features)
from deepjax.models.motion.dense_motion import DenseMotionNetwork
from deepjax.ops.sampling import grid_sample, interpolate_bilinear


def deform_input(x_BxHxWxC, deformation_Bxhxwx2, align_corners: bool,
                 resize_align_corners: bool = False):
  """Samples `x` at the deformation grid, first resized bilinearly to x's size if needed.

  `align_corners`: grid_sample's convention; `resize_align_corners`: the resize's
  (first-order motion resizes with False, thin-plate-spline motion with True).
  """
  h, w = x_BxHxWxC.shape[1:3]
  if deformation_Bxhxwx2.shape[1:3] != (h, w):
    deformation_Bxhxwx2 = interpolate_bilinear(deformation_Bxhxwx2, (h, w),
                                               resize_align_corners)
  return grid_sample(x_BxHxWxC, deformation_Bxhxwx2, align_corners=align_corners)


class Bottleneck(nn.Module):
  """num_blocks ResBlock2d named r0, r1, ... (the reference's nn.Sequential names)."""
  num_blocks: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i in range(self.num_blocks):
      x = ResBlock2d(3, 1, name=f"r{i}")(x, train)
    return x


class OcclusionAwareGenerator(nn.Module):
  """Source image + keypoints -> the source re-posed as the driving frame.

  Encoder (7x7 SameBlock, `num_down_blocks` DownBlocks) -> features warped by the dense
  deformation (grid_sample) and multiplied by the occlusion map (both resized bilinearly
  to the feature size when they differ) -> `num_bottleneck_blocks` ResBlocks -> UpBlocks ->
  7x7 conv -> sigmoid.

  Call: (source_BxHxWxC float32 [0, 1], kp_driving, kp_source, train, source_features=None)
  -> dict with "prediction" (B, H, W, C) in (0, 1) and, with dense motion, "mask",
  "sparse_deformed", "deformation", "occlusion_map" (as DenseMotionNetwork) and "deformed"
  (B, H, W, C): the source warped by the deformation. `source_features` (from the
  `encode` method) skips the encoder: animation encodes its one source image once for
  all frames (in eval mode the result is the same).

  `dense_motion_params`: dict of DenseMotionNetwork fields (block_expansion, num_blocks,
  max_features, scale_factor, optional kp_variance); None disables motion (autoencoder).
  """
  num_channels: int
  num_kp: int
  block_expansion: int
  max_features: int
  num_down_blocks: int
  num_bottleneck_blocks: int
  estimate_occlusion_map: bool = False
  dense_motion_params: Optional[Mapping[str, Any]] = None
  estimate_jacobian: bool = False
  align_corners: bool = False

  def setup(self):
    be, mf, n = self.block_expansion, self.max_features, self.num_down_blocks
    self.first = SameBlock2d(be, 7, 3)
    self.down_blocks = [DownBlock2d(hourglass_features(be, i + 1, mf)) for i in range(n)]
    if self.dense_motion_params is not None:
      self.dense_motion_network = DenseMotionNetwork(
          num_kp=self.num_kp, num_channels=self.num_channels,
          estimate_occlusion_map=self.estimate_occlusion_map, align_corners=self.align_corners,
          **dict(self.dense_motion_params))
    self.bottleneck = Bottleneck(self.num_bottleneck_blocks)
    self.up_blocks = [UpBlock2d(hourglass_features(be, n - i - 1, mf)) for i in range(n)]
    self.final = Conv2d(self.num_channels, (7, 7), (3, 3))

  def encode(self, source_BxHxWxC, train: bool = False):
    """Encoder features of the source: (B, H / 2**n, W / 2**n, channels)."""
    out = self.first(source_BxHxWxC, train)
    for block in self.down_blocks:
      out = block(out, train)
    return out

  def __call__(self, source_BxHxWxC, kp_driving, kp_source, train: bool = False,
               source_features=None) -> Dict[str, jax.Array]:
    out = self.encode(source_BxHxWxC, train) if source_features is None else source_features
    result = {}
    if self.dense_motion_params is not None:
      motion = self.dense_motion_network(source_BxHxWxC, kp_driving, kp_source, train)
      result["mask"] = motion["mask"]
      result["sparse_deformed"] = motion["sparse_deformed"]
      result["deformation"] = motion["deformation"]
      out = deform_input(out, motion["deformation"], self.align_corners)
      if "occlusion_map" in motion:
        occlusion = motion["occlusion_map"]
        result["occlusion_map"] = occlusion
        if occlusion.shape[1:3] != out.shape[1:3]:
          occlusion = interpolate_bilinear(occlusion, out.shape[1:3])
        out = out * occlusion
      result["deformed"] = deform_input(source_BxHxWxC, motion["deformation"], self.align_corners)

    out = self.bottleneck(out, train)
    for block in self.up_blocks:
      out = block(out, train)
    result["prediction"] = jax.nn.sigmoid(self.final(out))
    return result
