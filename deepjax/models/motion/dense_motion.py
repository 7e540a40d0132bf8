"""Dense motion network of the first-order motion model (modules/dense_motion.py), NHWC.

Names match the reference (`hourglass`, `mask`, `occlusion`) for checkpoint import.
"""
from typing import Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.models.hourglass import Hourglass, anti_alias_interpolate, conv2d
from deepjax.ops import keypoints as kpo
from deepjax.ops.sampling import grid_sample


def heatmap_representation(spatial_size, kp_driving, kp_source, kp_variance: float):
  """Eq. 6: Gaussian(driving) - Gaussian(source), background channel 0 first: (B,h,w,K+1)."""
  gd = kpo.kp2gaussian(kp_driving["value"], spatial_size, kp_variance)
  gs = kpo.kp2gaussian(kp_source["value"], spatial_size, kp_variance)
  heat = gd - gs
  zeros = jnp.zeros(heat.shape[:-1] + (1,), heat.dtype)
  return jnp.concatenate([zeros, heat], axis=-1)


def sparse_motions(spatial_size, kp_driving, kp_source):
  """Eq. 4: for each keypoint, z -> kp_s + J_s inv(J_d) (z - kp_d); identity first.

  Returns (B, K+1, h, w, 2) sampling grids (x, y) into the source.
  """
  h, w = spatial_size
  b, k, _ = kp_driving["value"].shape
  grid = kpo.make_coordinate_grid(h, w).reshape(1, 1, h, w, 2)
  coords = grid - kp_driving["value"].reshape(b, k, 1, 1, 2)
  if "jacobian" in kp_driving:
    jac = jnp.matmul(kp_source["jacobian"], kpo.batched_inv_2x2(kp_driving["jacobian"]))
    coords = jnp.einsum("bkij,bkhwj->bkhwi", jac, coords)
  to_source = coords + kp_source["value"].reshape(b, k, 1, 1, 2)
  identity = jnp.broadcast_to(grid, (b, 1, h, w, 2))
  return jnp.concatenate([identity, to_source], axis=1)


def deform_source(source_BxHxWxC, motions_BxMxhxwx2, align_corners: bool):
  """Eq. 7: the source sampled by each of the M motions: (B, M, h, w, C)."""
  b, m, h, w, _ = motions_BxMxhxwx2.shape
  c = source_BxHxWxC.shape[-1]
  rep = jnp.broadcast_to(source_BxHxWxC[:, None], (b, m) + source_BxHxWxC.shape[1:])
  rep = rep.reshape((b * m,) + source_BxHxWxC.shape[1:])
  out = grid_sample(rep, motions_BxMxhxwx2.reshape(b * m, h, w, 2), align_corners=align_corners)
  return out.reshape(b, m, h, w, c)


class DenseMotionNetwork(nn.Module):
  """Sparse keypoint motions -> dense deformation, occlusion map.

  Call: (source_BxHxWxC float32, kp_driving, kp_source, train) -> dict with
    "sparse_deformed" (B, K+1, h, w, C): source warped by each motion (index 0 = identity),
    "mask" (B, h, w, K+1): softmax weights over the motions (sum to 1),
    "deformation" (B, h, w, 2): the blended sampling grid (x, y) into the source,
    "occlusion_map" (B, h, w, 1) in (0, 1), with `estimate_occlusion_map`,
  where (h, w) = (H, W) * scale_factor (anti-aliased), divisible by 2**num_blocks.
  """
  block_expansion: int
  num_blocks: int
  max_features: int
  num_kp: int
  num_channels: int
  estimate_occlusion_map: bool = False
  scale_factor: float = 1.0
  kp_variance: float = 0.01
  align_corners: bool = False

  @nn.compact
  def __call__(self, source_BxHxWxC, kp_driving, kp_source, train: bool = False
               ) -> Dict[str, jax.Array]:
    source = anti_alias_interpolate(source_BxHxWxC, self.scale_factor)
    b, h, w, c = source.shape
    heat_BxhxwxM = heatmap_representation((h, w), kp_driving, kp_source, self.kp_variance)
    motions = sparse_motions((h, w), kp_driving, kp_source)
    deformed = deform_source(source, motions, self.align_corners)
    m = self.num_kp + 1
    # Per motion: [heatmap, deformed channels], motion-major (the reference's channel order).
    per_motion = jnp.concatenate(
        [heat_BxhxwxM.transpose(0, 3, 1, 2)[..., None], deformed], axis=-1)  # (B,M,h,w,C+1)
    x = per_motion.transpose(0, 2, 3, 1, 4).reshape(b, h, w, m * (c + 1))
    prediction = Hourglass(self.block_expansion, self.num_blocks, self.max_features,
                           name="hourglass")(x, train)
    mask = jax.nn.softmax(conv2d(m, 7, 3, "mask")(prediction), axis=-1)
    deformation = jnp.einsum("bhwm,bmhwd->bhwd", mask, motions)
    out = {"sparse_deformed": deformed, "mask": mask, "deformation": deformation}
    if self.estimate_occlusion_map:
      out["occlusion_map"] = jax.nn.sigmoid(conv2d(1, 7, 3, "occlusion")(prediction))
    return out
