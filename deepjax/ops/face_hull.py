"""The face region of a 68-landmark face as a hard mask, in jax (for batches in jit).

The region is the polygon of the jaw line (points 0-16) closed over the
eyebrows (26 back to 17) -- no forehead. The GAN's mask is pulled towards it
(`deepjax.train.tasks.gan`) and the swap evaluation measures PSNR/L1 inside it
(`deepjax.eval.swap_synthetic`). The numpy masks for real footage, with forehead, growth
and feathering, are in `deepjax.faces.mask`. `hull_signed_distance` (signed distance
to the convex hull of any point set) serves the loss weight maps (`deepjax.losses`)
and the self-blended images' masks (`deepjax.ops.self_blend`).

Landmarks are (x, y) in [-1, 1] (align_corners=False pixel centres), as the
synthetic renderer gives them.
"""
import jax.numpy as jnp


# Outline of the face in the 68-point order: the jaw (0-16), then the brows right to left.
FACE_OUTLINE = tuple(range(17)) + tuple(range(26, 16, -1))


def face_hull_mask(landmarks_Bx68x2, size: int):
  """1 inside the face outline (jaw + brows polygon), else 0: float32 (B,size,size,1).

  Even-odd rule on the polygon `FACE_OUTLINE` at pixel centres (x, y in [-1, 1],
  align_corners=False), so it also holds for slightly non-convex outlines.
  """
  poly = landmarks_Bx68x2[:, jnp.asarray(FACE_OUTLINE)].astype(jnp.float32)  # (B,N,2)
  nxt = jnp.roll(poly, -1, axis=1)
  c = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size * 2.0 - 1.0
  py = c.reshape(1, 1, size, 1)
  px = c.reshape(1, 1, 1, size)
  x0, y0 = poly[..., 0, None, None], poly[..., 1, None, None]
  x1, y1 = nxt[..., 0, None, None], nxt[..., 1, None, None]
  straddles = (y0 > py) != (y1 > py)
  x_cross = x0 + (py - y0) * (x1 - x0) / jnp.where(y1 == y0, 1.0, y1 - y0)
  crossings = jnp.sum(straddles & (px < x_cross), axis=1)  # (B, size, size)
  return (crossings % 2 == 1).astype(jnp.float32)[..., None]


def hull_signed_distance(points_BxNx2, pix_Px2):
  """Signed distance proxy to the convex hull of each point set (positive inside).

  min over hull edges of the signed distance to the edge's line: exact inside a
  convex polygon, negative outside (there it never exceeds the true distance).
  Hull edges are the ordered pairs (i, j) with all points on one side (cross >= 0).

  Args:
    points_BxNx2: float32 (B, N, 2).
    pix_Px2: float32 (P, 2) query points.

  Returns:
    float32 (B, P).
  """
  pi = points_BxNx2[:, :, None, :]            # (B, N, 1, 2)
  pj = points_BxNx2[:, None, :, :]            # (B, 1, N, 2)
  edge = pj - pi                              # (B, N, N, 2)
  length = jnp.sqrt(jnp.sum(edge * edge, -1))  # (B, N, N)
  # cross(edge, pk - pi) for all k: (B, N, N, K)
  rel = points_BxNx2[:, None, None, :, :] - pi[:, :, :, None, :]
  cross = edge[..., None, 0] * rel[..., 1] - edge[..., None, 1] * rel[..., 0]
  tol = 1e-6 * jnp.maximum(length, 1e-12)[..., None]
  # (i, j) is a hull edge when every point lies at cross >= 0 (interior on that side).
  is_edge = jnp.all(cross >= -tol, axis=-1) & (length > 1e-9)
  # One outgoing edge per hull vertex i (the longest, in case of collinear points):
  # keeps the work at (B, N, P) rather than (B, N, N, P).
  j = jnp.argmax(jnp.where(is_edge, length, -1.0), axis=2)          # (B, N)
  valid = jnp.any(is_edge, axis=2)                                   # (B, N)
  e = jnp.take_along_axis(edge, j[..., None, None], axis=2)[:, :, 0]  # (B, N, 2)
  e_len = jnp.take_along_axis(length, j[..., None], axis=2)[..., 0]  # (B, N)
  safe_len = jnp.where(valid, e_len, 1.0)
  # Signed distance of each query point to each edge line: (B, N, P)
  relp = pix_Px2[None, None, :, :] - points_BxNx2[:, :, None, :]
  crossp = e[..., None, 0] * relp[..., 1] - e[..., None, 1] * relp[..., 0]
  dist = jnp.where(valid[..., None], crossp / safe_len[..., None], jnp.inf)
  d = jnp.min(dist, axis=1)
  # Degenerate sets (all points equal): fall back to minus the distance to the centroid.
  centroid = jnp.mean(points_BxNx2, axis=1)   # (B, 2)
  d_centroid = -jnp.sqrt(jnp.sum(jnp.square(pix_Px2[None] - centroid[:, None]), -1))
  return jnp.where(jnp.any(is_edge, axis=(1, 2))[:, None], d, d_centroid)
