"""The face region of a 68-landmark face as a hard mask, in jax (for batches in jit).

The region is the polygon of the jaw line (points 0-16) closed over the
eyebrows (26 back to 17) -- no forehead. The GAN's mask is pulled towards it
(`deepjax.train.tasks.gan`) and the swap evaluation measures PSNR/L1 inside it
(`deepjax.eval.swap_synthetic`). The numpy masks for real footage, with forehead, growth
and feathering, are in `deepjax.faces.mask`.

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
