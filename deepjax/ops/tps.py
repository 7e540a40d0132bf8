"""Thin-plate-spline warps of the motion models.

Random warps for the equivariance losses: pure-function version of first-order-model's
`Transform` (modules/model.py) and of thin-plate-spline-motion's `TPS(mode='random')`
(modules/util.py). A warp maps coordinates z (x, y in the keypoint convention of
`deepjax.ops.keypoints`) to

  T(z) = A z + t + sum_p w_p * U(z - c_p)

with A, t = I + N(0, sigma_affine^2) (a (2, 3) matrix per sample), control points c_p on a
points_tps x points_tps `make_coordinate_grid`, and weights w_p ~ N(0, sigma_tps^2) shared
by both output coordinates (as both references). The radial basis U is `rbf`:
  "fomm":  U(d) = |d|_1^2 log(|d|_1 + 1e-6)   (first-order-model: L1 distance)
  "tpsmm": U(d) = r2 log(r2 + 1e-9), r2 = |d|_2^2   (thin-plate-spline motion)
`tps_transform_frame` resamples a frame at T(grid), i.e. output(z) = frame(T(z)); keypoints
of the transformed frame map back to the original frame via T.

Params are a dict: `theta` (B, 2, 3) float32 and, with TPS enabled, `control_points`
(P, 2) and `control_params` (B, P) float32 (P = points_tps^2).

Fitted warps (thin-plate-spline motion's `TPS(mode='kp')`, Eq. 2 of Zhao & Zhang 2022):
`tps_fit` solves, for each of G groups of N point pairs, the regularised TPS system that
maps the driving points onto the source points; `tps_fit_warp` evaluates it.
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


RBF_KINDS = ("fomm", "tpsmm")


def radial_basis(diff_x2, rbf: str = "fomm"):
  """U of the module docstring on difference vectors (..., 2) -> (...)."""
  if rbf == "fomm":
    dist = jnp.sum(jnp.abs(diff_x2), axis=-1)
    return dist ** 2 * jnp.log(dist + 1e-6)
  if rbf == "tpsmm":
    r2 = jnp.sum(diff_x2 ** 2, axis=-1)
    return r2 * jnp.log(r2 + 1e-9)
  raise ValueError(f"unknown rbf {rbf!r}; expected one of {RBF_KINDS}")


def tps_warp_coordinates(params: TpsParams, coords_BxNx2, rbf: str = "fomm"):
  """Applies the warp: (B or 1, N, 2) -> (B, N, 2)."""
  theta = params["theta"]
  b = theta.shape[0]
  n = coords_BxNx2.shape[1]
  coords = jnp.broadcast_to(coords_BxNx2, (b, n, 2)).astype(jnp.float32)
  out = jnp.einsum("bij,bnj->bni", theta[:, :, :2], coords) + theta[:, None, :, 2]
  if "control_params" in params:
    cp_Px2 = params["control_points"]
    rbf_BxNxP = radial_basis(coords[:, :, None, :] - cp_Px2[None, None], rbf)
    out = out + jnp.einsum("bnp,bp->bn", rbf_BxNxP, params["control_params"])[..., None]
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


def tps_transform_frame(params: TpsParams, frame_BxHxWxC, align_corners: bool = False,
                        rbf: str = "fomm"):
  """Resamples each frame at the warped coordinate grid (reflection padding, as the reference).

  Args:
    params: from `tps_sample_params` with batch B.
    frame_BxHxWxC: float32 frames.
    align_corners: the grid_sample convention (first-order-model under torch >= 1.3 uses
      False; see `deepjax.models.motion` configs; thin-plate-spline motion uses True).
    rbf: the radial basis (module docstring).

  Returns:
    (B, H, W, C) float32.
  """
  b, h, w, _ = frame_BxHxWxC.shape
  grid = kpo.make_coordinate_grid(h, w).reshape(1, h * w, 2)
  warped = tps_warp_coordinates(params, grid, rbf).reshape(b, h, w, 2)
  return grid_sample(frame_BxHxWxC, warped, align_corners=align_corners,
                     padding_mode="reflection")


def equivariance_value_loss(params: TpsParams, kp_driving_BxKx2, kp_transformed_BxKx2,
                            rbf: str = "fomm"):
  """mean |kp_driving - T(kp_of_transformed_frame)| (unweighted)."""
  warped = tps_warp_coordinates(params, kp_transformed_BxKx2, rbf)
  return jnp.mean(jnp.abs(kp_driving_BxKx2 - warped))


def equivariance_jacobian_loss(params: TpsParams, kp_transformed_BxKx2, jac_driving_BxKx2x2,
                               jac_transformed_BxKx2x2):
  """mean |I - inv(J_driving) @ (dT(kp_transformed) @ J_transformed)| (unweighted)."""
  jac_t = jnp.matmul(tps_jacobian(params, kp_transformed_BxKx2), jac_transformed_BxKx2x2)
  value = jnp.matmul(kpo.batched_inv_2x2(jac_driving_BxKx2x2), jac_t)
  eye = jnp.eye(2, dtype=value.dtype).reshape(1, 1, 2, 2)
  return jnp.mean(jnp.abs(eye - value))


def tps_fit(kp_from_BxGxNx2, kp_to_BxGxNx2, regularization: float = 0.01) -> TpsParams:
  """Fits G thin-plate splines per sample mapping kp_from[b, g] onto kp_to[b, g].

  Solves ([[K, P], [P^T, 0]] + regularization I) [w; a] = [kp_to; 0] with
  K_ij = U(p_i - p_j) ("tpsmm" basis), P = [p, 1] (the reference inverts the matrix; so
  does this). Returns {"control_points": kp_from (B, G, N, 2), "theta": (B, G, 2, 3) affine
  part, "control_params": (B, G, N, 2) spline weights}.
  """
  b, g, n, _ = kp_from_BxGxNx2.shape
  p = kp_from_BxGxNx2.astype(jnp.float32)
  k = radial_basis(p[:, :, :, None, :] - p[:, :, None, :, :], "tpsmm")  # (B, G, N, N)
  p1 = jnp.concatenate([p, jnp.ones((b, g, n, 1), jnp.float32)], axis=-1)  # (B, G, N, 3)
  top = jnp.concatenate([k, p1], axis=-1)
  bottom = jnp.concatenate([jnp.swapaxes(p1, -1, -2), jnp.zeros((b, g, 3, 3), jnp.float32)],
                           axis=-1)
  lhs = jnp.concatenate([top, bottom], axis=-2) + regularization * jnp.eye(n + 3)[None, None]
  rhs = jnp.concatenate([kp_to_BxGxNx2.astype(jnp.float32),
                         jnp.zeros((b, g, 3, 2), jnp.float32)], axis=-2)
  param = jnp.matmul(jnp.linalg.inv(lhs), rhs)  # (B, G, N + 3, 2)
  return {"control_points": p, "theta": jnp.swapaxes(param[:, :, n:], -1, -2),
          "control_params": param[:, :, :n]}


def tps_fit_warp(params: TpsParams, coords_Mx2):
  """Evaluates fitted splines (from `tps_fit`) at M points: (B, G, M, 2)."""
  theta = params["theta"]
  z = coords_Mx2.astype(jnp.float32)
  out = jnp.einsum("bgij,mj->bgmi", theta[..., :2], z) + theta[:, :, None, :, 2]
  cp = params["control_points"]  # (B, G, N, 2)
  rbf_BxGxMxN = radial_basis(z[None, None, :, None, :] - cp[:, :, None, :, :], "tpsmm")
  return out + jnp.einsum("bgmn,bgnd->bgmd", rbf_BxGxMxN, params["control_params"])
