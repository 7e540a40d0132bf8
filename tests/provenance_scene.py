"""Synthetic test pictures for the provenance tests (no real footage needed)."""
import numpy as np
from scipy import ndimage
def scene(seed, n=1, size=256):
  """uint8 (n, size, size, 3): smooth gradients, blurred discs, mild sensor noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  base = rng.uniform(60, 190, 3) + 40 * (xx[..., None] * rng.uniform(-1, 1, 3) + yy[..., None] * rng.uniform(-1, 1, 3))
  img = np.broadcast_to(base, (size, size, 3)).copy()
  for _ in range(8):
    cy, cx, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.05, 0.25)]
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(float)
    img += ndimage.gaussian_filter(disc, 2)[..., None] * rng.uniform(-60, 60, 3)
  frames = []
  for i in range(n):
    f = np.roll(img, 2 * i, axis=1) + rng.normal(0, 2, img.shape)
    frames.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
  return np.stack(frames)
