"""Random thin-plate-spline warps for the equivariance losses of first-order motion.

Pure-function version of the reference's `Transform` (modules/model.py). A warp maps
coordinates z (x, y in the keypoint convention of `deepjax.ops.keypoints`) to

  T(z) = A z + t + sum_p w_p * d_p(z)^2 * log(d_p(z) + 1e-6),   d_p(z) = |z - c_p|_1

with A, t = I + N(0, sigma_affine^2) (a (2, 3) matrix per sample), control points c_p on a
points_tps x points_tps `make_coordinate_grid`, and weights w_p ~ N(0, sigma_tps^2) shared
by both output coordinates (as the reference; note the L1 distance, also as the
reference). `tps_transform_frame` resamples a frame at T(grid), i.e. output(z) =
frame(T(z)); keypoints of the transformed frame map back to the original frame via T.

Params are a dict: `theta` (B, 2, 3) float32 and, with TPS enabled, `control_points`
(P, 2) and `control_params` (B, P) float32 (P = points_tps^2).
"""
from typing import Dict, Optional

import jax
import jax.numpy as jnp

from deepjax.ops import keypoints as kpo
from deepjax.ops.sampling import grid_sample

TpsParams = Dict[str, jax.Array]


def tps_sample_params(key, batch: int, sigma_affine: float, sigma_tps: Optional[float] = None,
                      points_tps: Optional[int] = None) -> TpsParams:
  """Samples `batch` random warps (the reference's `Transform.__init__`)."""
  k_affine, k_tps = jax.random.split(key)
  eye = jnp.eye(2, 3, dtype=jnp.float32)[None]
  theta = eye + sigma_affine * jax.random.normal(k_affine, (batch, 2, 3), jnp.float32)
  params = {"theta": theta}
  if sigma_tps is not None and points_tps:
    params["control_points"] = kpo.make_coordinate_grid(points_tps, points_tps).reshape(-1, 2)
    params["control_params"] = sigma_tps * jax.random.normal(
        k_tps, (batch, points_tps * points_tps), jnp.float32)
  return params


def tps_identity_params(batch: int, points_tps: Optional[int] = None) -> TpsParams:
  """Parameters of the identity warp (zero noise)."""
  params = {"theta": jnp.broadcast_to(jnp.eye(2, 3, dtype=jnp.float32)[None], (batch, 2, 3))}
  if points_tps:
    params["control_points"] = kpo.make_coordinate_grid(points_tps, points_tps).reshape(-1, 2)
    params["control_params"] = jnp.zeros((batch, points_tps * points_tps), jnp.float32)
  return params


def tps_warp_coordinates(params: TpsParams, coords_BxNx2):
  """Applies the warp: (B or 1, N, 2) -> (B, N, 2)."""
  theta = params["theta"]
  b = theta.shape[0]
  n = coords_BxNx2.shape[1]
  coords = jnp.broadcast_to(coords_BxNx2, (b, n, 2)).astype(jnp.float32)
  out = jnp.einsum("bij,bnj->bni", theta[:, :, :2], coords) + theta[:, None, :, 2]
  if "control_params" in params:
    cp_Px2 = params["control_points"]
    dist_BxNxP = jnp.sum(jnp.abs(coords[:, :, None, :] - cp_Px2[None, None]), axis=-1)
    rbf = dist_BxNxP ** 2 * jnp.log(dist_BxNxP + 1e-6)
    out = out + jnp.einsum("bnp,bp->bn", rbf, params["control_params"])[..., None]
  return out


def tps_jacobian(params: TpsParams, coords_BxNx2):
  """Jacobian of the warp at each point: (B, N, 2, 2), [i, j] = d T_i / d z_j.

  Forward-mode differentiation of `tps_warp_coordinates` (as `jax.jacfwd`): each output
  point depends only on its own input point, so one JVP with tangent e_j at every point
  gives column j of every point's Jacobian.
  """
  b, n = params["theta"].shape[0], coords_BxNx2.shape[1]
  coords = jnp.broadcast_to(coords_BxNx2, (b, n, 2)).astype(jnp.float32)
  warp = lambda z: tps_warp_coordinates(params, z)  # noqa: E731
  cols = []
  for j in range(2):
    tangent = jnp.zeros_like(coords).at[..., j].set(1.0)
    cols.append(jax.jvp(warp, (coords,), (tangent,))[1])
  return jnp.stack(cols, axis=-1)


def tps_transform_frame(params: TpsParams, frame_BxHxWxC, align_corners: bool = False):
  """Resamples each frame at the warped coordinate grid (reflection padding, as the reference).

  Args:
    params: from `tps_sample_params` with batch B.
    frame_BxHxWxC: float32 frames.
    align_corners: the grid_sample convention (the reference code under torch >= 1.3 uses
      False; see `deepjax.models.motion` configs).

  Returns:
    (B, H, W, C) float32.
  """
  b, h, w, _ = frame_BxHxWxC.shape
  grid = kpo.make_coordinate_grid(h, w).reshape(1, h * w, 2)
  warped = tps_warp_coordinates(params, grid).reshape(b, h, w, 2)
  return grid_sample(frame_BxHxWxC, warped, align_corners=align_corners,
                     padding_mode="reflection")


def equivariance_value_loss(params: TpsParams, kp_driving_BxKx2, kp_transformed_BxKx2):
  """mean |kp_driving - T(kp_of_transformed_frame)| (unweighted)."""
  return jnp.mean(jnp.abs(kp_driving_BxKx2 - tps_warp_coordinates(params, kp_transformed_BxKx2)))


def equivariance_jacobian_loss(params: TpsParams, kp_transformed_BxKx2, jac_driving_BxKx2x2,
                               jac_transformed_BxKx2x2):
  """mean |I - inv(J_driving) @ (dT(kp_transformed) @ J_transformed)| (unweighted)."""
  jac_t = jnp.matmul(tps_jacobian(params, kp_transformed_BxKx2), jac_transformed_BxKx2x2)
  value = jnp.matmul(kpo.batched_inv_2x2(jac_driving_BxKx2x2), jac_t)
  eye = jnp.eye(2, dtype=value.dtype).reshape(1, 1, 2, 2)
  return jnp.mean(jnp.abs(eye - value))
