"""Keypoint maths of the first-order motion model (Siarohin et al., NeurIPS 2019).

Coordinate convention (as the reference's `make_coordinate_grid`): a keypoint is (x, y)
with x along the width and y along the height; -1 and +1 are the *centres* of the first
and last pixels (x_i = 2 i / (W - 1) - 1, an `align_corners=True`-like grid). This differs
from deepjax's landmark convention (docs/CONTRACTS.md: -1/+1 are the image *edges*); the
two differ by a factor (W - 1) / W about the centre. Motion keypoints stay in this model's
convention so that published checkpoints behave as trained; convert with
`motion_to_edge_coords` when comparing with landmarks.

Keypoint dicts (`kp`) hold `value` (..., K, 2) float32 and, when the model estimates them,
`jacobian` (..., K, 2, 2) float32 (d(driving->source) local affine parts; row-major).
"""
from typing import Dict, Optional

import jax
import jax.numpy as jnp

Kp = Dict[str, jax.Array]


def make_coordinate_grid(h: int, w: int, dtype=jnp.float32) -> jax.Array:
  """(h, w, 2) grid of (x, y): x_j = 2 j / (w - 1) - 1, y_i = 2 i / (h - 1) - 1."""
  x = 2.0 * (jnp.arange(w, dtype=jnp.float32) / (w - 1)) - 1.0
  y = 2.0 * (jnp.arange(h, dtype=jnp.float32) / (h - 1)) - 1.0
  xx = jnp.broadcast_to(x[None, :], (h, w))
  yy = jnp.broadcast_to(y[:, None], (h, w))
  return jnp.stack([xx, yy], axis=-1).astype(dtype)


def motion_to_edge_coords(kp_value, size: int):
  """Pixel-centre convention (this module) -> image-edge convention (CONTRACTS.md)."""
  return kp_value * ((size - 1) / size)


def spatial_softmax(logits_BxHxWxK, temperature: float = 0.1):
  """Softmax over the spatial axes (H, W) of each of the K channels, of logits / temperature."""
  b, h, w, k = logits_BxHxWxK.shape
  flat = logits_BxHxWxK.reshape(b, h * w, k) / temperature
  return jax.nn.softmax(flat, axis=1).reshape(b, h, w, k)


def heatmap_to_keypoints(heatmap_BxHxWxK):
  """Expected coordinate under each normalised heatmap: (B, K, 2) (x, y).

  The heatmap must already sum to one over space (see `spatial_softmax`); this is the
  reference's `gaussian2kp`: sum_z heatmap_k(z) * z over the `make_coordinate_grid` grid.
  """
  _, h, w, _ = heatmap_BxHxWxK.shape
  grid_HxWx2 = make_coordinate_grid(h, w, heatmap_BxHxWxK.dtype)
  return jnp.einsum("bhwk,hwd->bkd", heatmap_BxHxWxK, grid_HxWx2)


def heatmap_to_jacobians(heatmap_BxHxWxK, jacobian_map_BxHxWxC):
  """Heatmap-weighted sum of per-pixel 2x2 maps: (B, K, 2, 2).

  Args:
    heatmap_BxHxWxK: normalised heatmaps.
    jacobian_map_BxHxWxC: C = 4 * J with J = K (one map per keypoint) or J = 1 (shared);
      channel 4 j + t holds entry t of the row-major 2x2 matrix of map j (the reference's
      `view(B, J, 4, H, W)` on NCHW channels).
  """
  b, h, w, k = heatmap_BxHxWxK.shape
  c = jacobian_map_BxHxWxC.shape[-1]
  if c % 4 or c // 4 not in (1, k):
    raise ValueError(f"jacobian map has {c} channels; expected 4 or 4*{k}")
  maps_BxHxWxJx4 = jacobian_map_BxHxWxC.reshape(b, h, w, c // 4, 4)
  maps_BxHxWxKx4 = jnp.broadcast_to(maps_BxHxWxJx4, (b, h, w, k, 4))
  jac_BxKx4 = jnp.einsum("bhwk,bhwkt->bkt", heatmap_BxHxWxK, maps_BxHxWxKx4)
  return jac_BxKx4.reshape(b, k, 2, 2)


def kp2gaussian(kp_value_xKx2, spatial_size, kp_variance: float):
  """Unnormalised Gaussians exp(-|z - kp|^2 / (2 var)) on the coordinate grid.

  Args:
    kp_value_xKx2: (..., K, 2) keypoints.
    spatial_size: (h, w).
    kp_variance: variance (the reference uses 0.01).

  Returns:
    (..., h, w, K) float32 (channels last; the reference's (..., K, h, w) transposed).
  """
  h, w = spatial_size
  grid_HxWx2 = make_coordinate_grid(h, w, kp_value_xKx2.dtype)
  lead = kp_value_xKx2.shape[:-2]
  k = kp_value_xKx2.shape[-2]
  grid = grid_HxWx2.reshape((1,) * len(lead) + (h, w, 1, 2))
  mean = kp_value_xKx2.reshape(lead + (1, 1, k, 2))
  d2 = jnp.sum((grid - mean) ** 2, axis=-1)
  return jnp.exp(-0.5 * d2 / kp_variance)


def batched_inv_2x2(m_x2x2):
  """Closed-form inverse of (..., 2, 2) matrices: [[d, -b], [-c, a]] / (ad - bc)."""
  a = m_x2x2[..., 0, 0]
  b = m_x2x2[..., 0, 1]
  c = m_x2x2[..., 1, 0]
  d = m_x2x2[..., 1, 1]
  det = a * d - b * c
  row0 = jnp.stack([d, -b], axis=-1)
  row1 = jnp.stack([-c, a], axis=-1)
  return jnp.stack([row0, row1], axis=-2) / det[..., None, None]


def convex_hull_area(points_xNx2, eps: float = 1e-7):
  """Area of the 2-D convex hull of N points, jit-able: (...,) float32.

  An ordered pair (i, j) is a counter-clockwise hull edge when no point lies strictly to
  its right and every point on its line lies within the segment; the area is the shoelace
  sum over those edges (repeated points count once). Collinear points give 0 (where
  `scipy.spatial.ConvexHull` raises). O(N^3) work: meant for keypoint sets (N ~ 10).
  """
  p = points_xNx2
  pi = p[..., :, None, None, :]  # edge start i
  pj = p[..., None, :, None, :]  # edge end j
  pk = p[..., None, None, :, :]  # tested point k
  e = pj - pi
  r = pk - pi
  cross = e[..., 0] * r[..., 1] - e[..., 1] * r[..., 0]  # (..., i, j, k)
  elen2 = jnp.sum(e * e, axis=-1)
  t = jnp.sum(e * r, axis=-1) / jnp.maximum(elen2, eps)
  scale = jnp.maximum(jnp.sqrt(elen2), eps)
  on_line = jnp.abs(cross) <= eps * scale
  ok = (cross > eps * scale) | (on_line & (t >= -eps) & (t <= 1 + eps))
  is_edge = jnp.all(ok, axis=-1) & (elen2[..., 0] > eps * eps)  # (..., i, j)
  # Coincident points: only the first of each group may start or end an edge.
  n = p.shape[-2]
  earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # (j, m): m < j
  earlier = earlier.reshape((1,) * (p.ndim - 2) + (n, n))
  same = elen2[..., 0] <= eps * eps  # (..., m, j) symmetric
  dup = jnp.any(same & earlier, axis=-1)  # (..., j)
  is_edge = is_edge & ~dup[..., :, None] & ~dup[..., None, :]
  pii = p[..., :, None, :]
  pjj = p[..., None, :, :]
  shoelace = pii[..., 0] * pjj[..., 1] - pii[..., 1] * pjj[..., 0]
  return 0.5 * jnp.sum(jnp.where(is_edge, shoelace, 0.0), axis=(-2, -1))


def relative_motion(kp_source: Kp, kp_driving: Kp, kp_driving_initial: Kp,
                    adapt_movement_scale: bool = False, use_relative_movement: bool = False,
                    use_relative_jacobian: bool = False) -> Kp:
  """The reference's `normalize_kp` (animate.py): driving keypoints relative to frame 0.

  With `use_relative_movement`, value = s * (kp_driving - kp_driving_initial) + kp_source,
  where s = sqrt(hull_area(kp_source)) / sqrt(hull_area(kp_driving_initial)) when
  `adapt_movement_scale`, else 1; with `use_relative_jacobian` too, jacobian =
  J_driving @ inv(J_driving_initial) @ J_source. Without `use_relative_movement` the
  driving keypoints pass through unchanged (as the reference).

  All inputs broadcast over their leading axes (e.g. source and initial (1, K, ...)
  against driving (T, K, ...)). The reference computes the hull areas on batch element 0
  only (it animates one pair at a time); here each element uses its own hull, which is the
  same for batch 1. A degenerate (collinear) initial driving hull gives s = inf (the
  reference's scipy call raises instead).
  """
  out = dict(kp_driving)
  if not use_relative_movement:
    return out
  diff = kp_driving["value"] - kp_driving_initial["value"]
  if adapt_movement_scale:
    s = jnp.sqrt(convex_hull_area(kp_source["value"])) / jnp.sqrt(
        convex_hull_area(kp_driving_initial["value"]))
    diff = diff * s[..., None, None]
  out["value"] = diff + kp_source["value"]
  if use_relative_jacobian:
    jac_diff = jnp.matmul(kp_driving["jacobian"], batched_inv_2x2(kp_driving_initial["jacobian"]))
    out["jacobian"] = jnp.matmul(jac_diff, kp_source["jacobian"])
  return out


def broadcast_kp(kp: Kp, batch: int) -> Kp:
  """Broadcasts a kp dict with leading batch 1 to `batch`."""
  return {name: jnp.broadcast_to(v, (batch,) + v.shape[1:]) for name, v in kp.items()}


def detach_kp(kp: Optional[Kp]) -> Optional[Kp]:
  """`jax.lax.stop_gradient` on every entry (the reference's `detach_kp`)."""
  if kp is None:
    return None
  return {name: jax.lax.stop_gradient(v) for name, v in kp.items()}
