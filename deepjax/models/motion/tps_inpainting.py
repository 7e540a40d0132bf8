"""Thin-plate-spline motion: inpainting generator and the AVD network, NHWC.

NHWC versions of the reference's modules/inpainting_network.py and modules/avd_network.py
(github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model); names match its state dicts (`first`,
`down_blocks_i`, `up_blocks_i`, `resblock_i`, `final`; `id_encoder_i`, `pose_encoder_i`,
`decoder_i` for the Sequential members) for checkpoint import.
"""
from typing import Any, Dict, List, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.models.hourglass import (Conv2d, DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d,
                                      hourglass_features, torch_kernel_init)
from deepjax.models.motion.generator import deform_input
from deepjax.models.motion.resnet import torch_linear_bias_init
from deepjax.ops.sampling import interpolate_bilinear

sg = jax.lax.stop_gradient


def _deform(x_BxHxWxC, deformation_Bxhxwx2):
  """grid_sample at the flow resized to x (both with align_corners=True, as the reference)."""
  return deform_input(x_BxHxWxC, deformation_Bxhxwx2, True, resize_align_corners=True)


class InpaintingNetwork(nn.Module):
  """Source image + dense motion -> the driving frame.

  Encoder (7x7 SameBlock, `num_down_blocks` DownBlocks, instance norm); from the coarsest
  level up, each encoder map is warped by the flow and multiplied by its occlusion mask
  (`occlusion_map[i]`, coarsest first, with `multi_mask`; else the one mask resized),
  decoded by two ResBlocks and an UpBlock and concatenated with the next warped map; at
  the top: out * (1 - occ) + warped map -> 7x7 conv -> sigmoid, then blended with the
  warped source image: out * (1 - occ) + deformed * occ.

  Call: (source_BxHxWxC float32 [0, 1], dense_motion (TPSDenseMotionNetwork's dict),
  source_features=None) -> dict with "prediction" (B, H, W, C), "deformed" (B, H, W, C),
  "warped_encoder_maps" (coarsest first; gradient-free features, gradient through the flow
  only: the warp loss's inputs), and dense_motion's "contribution_maps",
  "deformed_source", "occlusion_map". `source_features` (the `encode` method's list)
  skips the encoder (animation encodes its one source once).
  """
  num_channels: int
  block_expansion: int
  max_features: int
  num_down_blocks: int
  multi_mask: bool = True

  def setup(self):
    be, mf, n = self.block_expansion, self.max_features, self.num_down_blocks
    self.first = SameBlock2d(be, 7, 3, norm="instance")
    self.down_blocks = [DownBlock2d(hourglass_features(be, i + 1, mf), norm="instance")
                        for i in range(n)]
    up_blocks, resblock = [], []
    for j in range(n):
      i = n - 1 - j
      up_blocks.append(UpBlock2d(hourglass_features(be, i, mf), norm="instance"))
      resblock += [ResBlock2d(3, 1, norm="instance"), ResBlock2d(3, 1, norm="instance")]
    self.up_blocks = up_blocks
    self.resblock = resblock
    self.final = Conv2d(self.num_channels, (7, 7), (3, 3))

  def encode(self, image_BxHxWxC) -> List[jax.Array]:
    """Encoder maps, finest first: [first(x), down_1, ..., down_n]."""
    out = self.first(image_BxHxWxC)
    maps = [out]
    for block in self.down_blocks:
      out = block(out)
      maps.append(out)
    return maps

  def _occlude(self, x_BxHxWxC, occlusion_Bxhxwx1):
    if not self.multi_mask and occlusion_Bxhxwx1.shape[1:3] != x_BxHxWxC.shape[1:3]:
      occlusion_Bxhxwx1 = interpolate_bilinear(occlusion_Bxhxwx1, x_BxHxWxC.shape[1:3], True)
    return x_BxHxWxC * occlusion_Bxhxwx1

  def __call__(self, source_BxHxWxC, dense_motion: Dict[str, Any],
               source_features: Optional[Sequence[jax.Array]] = None) -> Dict[str, Any]:
    maps = self.encode(source_BxHxWxC) if source_features is None else list(source_features)
    occlusion = dense_motion["occlusion_map"]
    deformation = dense_motion["deformation"]
    warped = [self._occlude(_deform(sg(maps[-1]), deformation), sg(occlusion[0]))]
    out = self._occlude(_deform(maps[-1], deformation), occlusion[0])
    encode_i = out
    n = self.num_down_blocks
    for i in range(n):
      out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
      out = self.up_blocks[i](out)
      occ = occlusion[i + 1 if self.multi_mask else 0]
      warped_i = _deform(maps[-(i + 2)], deformation)
      warped.append(self._occlude(_deform(sg(maps[-(i + 2)]), deformation), sg(occ)))
      encode_i = self._occlude(warped_i, occ)
      if i < n - 1:
        out = jnp.concatenate([out, encode_i], axis=-1)
    deformed = _deform(source_BxHxWxC, deformation)
    occ_last = occlusion[-1]
    if not self.multi_mask:
      occ_last = interpolate_bilinear(occ_last, out.shape[1:3], True)
    out = out * (1.0 - occ_last) + encode_i
    out = jax.nn.sigmoid(self.final(out))
    out = out * (1.0 - occ_last) + deformed * occ_last
    return {"prediction": out, "deformed": deformed, "warped_encoder_maps": warped,
            "contribution_maps": dense_motion["contribution_maps"],
            "deformed_source": dense_motion["deformed_source"], "occlusion_map": occlusion}

  def get_encode(self, driving_BxHxWxC, occlusion_map: Sequence[jax.Array]) -> List[jax.Array]:
    """The warp loss's targets: the driving frame's encoder maps times the occlusion masks
    (finest first; no gradient). Needs `multi_mask` and 3 down blocks, as the reference."""
    out = self.first(driving_BxHxWxC)
    maps = [sg(self._occlude(sg(out), sg(occlusion_map[-1])))]
    for i, block in enumerate(self.down_blocks):
      out = block(sg(out))
      maps.append(sg(self._occlude(out, occlusion_map[2 - i])))
    return maps


class AVDNetwork(nn.Module):
  """Animation via disentanglement: (kp_source, kp_driving) -> kp dict with the driving pose
  and the source identity. id/pose encoders: Linear-BatchNorm1d-ReLU x3 + Linear to the
  bottleneck; decoder: the same on the concatenated [pose, id] embeddings.

  Call: (kp_source, kp_random, train) -> {"value": (B, num_tps*5, 2)}.
  """
  num_tps: int
  id_bottle_size: int = 64
  pose_bottle_size: int = 64

  def _mlp(self, prefix: str, x_BxF, sizes: Sequence[int], train: bool):
    for i, size in enumerate(sizes):
      x_BxF = nn.Dense(size, kernel_init=torch_kernel_init,
                       bias_init=torch_linear_bias_init(x_BxF.shape[-1]),
                       name=f"{prefix}_{3 * i}")(x_BxF)
      if i < len(sizes) - 1:
        x_BxF = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             name=f"{prefix}_{3 * i + 1}")(x_BxF)
        x_BxF = nn.relu(x_BxF)
    return x_BxF

  @nn.compact
  def __call__(self, kp_source, kp_random, train: bool = False) -> Dict[str, jax.Array]:
    b = kp_source["value"].shape[0]
    n = self.num_tps * 5 * 2
    pose = self._mlp("pose_encoder", kp_random["value"].reshape(b, -1),
                     (256, 512, 1024, self.pose_bottle_size), train)
    ident = self._mlp("id_encoder", kp_source["value"].reshape(b, -1),
                      (256, 512, 1024, self.id_bottle_size), train)
    rec = self._mlp("decoder", jnp.concatenate([pose, ident], axis=-1), (1024, 512, 256, n),
                    train)
    return {"value": rec.reshape(b, self.num_tps * 5, 2)}
