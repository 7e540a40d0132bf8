"""Face masks from 68 landmarks, in crop space or frame space (numpy / scipy.ndimage).

`landmark_mask` fills the convex hull of the jaw line (points 0-16) and the
eyebrows (17-26) after pushing the brows up over the forehead: each brow point
moves away from the nose tip (point 30) by `forehead` times its distance to it
(0 = hull ends at the brows; 0.5 reaches about the hairline on frontal faces).
`grow` dilates (> 0) or erodes (< 0) the hard mask by that many pixels with an
exact Euclidean disk (distance transform); `blur` feathers the edge with a Gaussian
of that sigma in pixels. The same function works for crop landmarks (crop pixels,
hw = (size, size)) and frame landmarks (frame pixels, hw = frame size).
`count_empty_masks` counts a swap model's learned masks that are empty (its output is then
its input), which both swap programs warn of.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError


def hull_points(landmarks: np.ndarray, forehead: float = 0.3) -> np.ndarray:
  """(27, 2) jaw + raised brow points whose convex hull is the face region."""
  lm = np.asarray(landmarks, np.float64)
  brows = lm[17:27]
  brows = brows + forehead * (brows - lm[30])
  return np.concatenate([lm[0:17], brows], 0)


def fill_polygon(points: np.ndarray, hw: tuple[int, int], supersample: int = 4) -> np.ndarray:
  """(H, W) float32 coverage of the convex hull of `points` (pixel coords, centres at ints).

  Drawn at `supersample` x resolution and box-averaged, so edges are anti-aliased.
  """
  h, w = hw
  pts = np.asarray(points, np.float64)
  try:
    hull = pts[ConvexHull(pts).vertices]
  except (QhullError, ValueError):
    return np.zeros((h, w), np.float32)
  s = supersample
  img = Image.new("L", (w * s, h * s), 0)
  ImageDraw.Draw(img).polygon([((x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5) for x, y in hull],
                              fill=255)
  big = np.asarray(img, np.float32) / 255.0
  return big.reshape(h, s, w, s).mean((1, 3)).astype(np.float32)


def grow_mask(mask: np.ndarray, pixels: float) -> np.ndarray:
  """Dilates (pixels > 0) or erodes (pixels < 0) the hard (> 0.5) mask; float32 0/1."""
  hard = np.asarray(mask) > 0.5
  if pixels > 0:
    out = ndimage.distance_transform_edt(~hard) <= pixels
  elif pixels < 0:
    out = ndimage.distance_transform_edt(hard) > -pixels
  else:
    out = hard
  return out.astype(np.float32)


def blur_mask(mask: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian feathering (sigma in pixels; 0 = unchanged). float32 in [0, 1]."""
  m = np.asarray(mask, np.float32)
  if sigma <= 0:
    return m
  return np.clip(ndimage.gaussian_filter(m, sigma, mode="constant"), 0.0, 1.0).astype(np.float32)


def landmark_mask(landmarks: np.ndarray, hw: tuple[int, int], forehead: float = 0.3,
                  grow: float = 0.0, blur: float = 0.0) -> np.ndarray:
  """Face mask (H, W) float32 in [0, 1] from (68, 2) pixel landmarks.

  Args:
    landmarks: (68, 2) (x, y) pixels of the image the mask is for.
    hw: (height, width) of that image.
    forehead: how far the brows are pushed up (see module docstring).
    grow: pixels to dilate (> 0) or erode (< 0).
    blur: Gaussian sigma in pixels for a soft edge.
  """
  m = fill_polygon(hull_points(landmarks, forehead), hw)
  if grow:
    m = grow_mask(m, grow)
  return blur_mask(m, blur)


def crop_mask(landmarks_unit: np.ndarray, size: int, forehead: float = 0.3,
              grow: float = 0.0, blur: float = 0.0) -> np.ndarray:
  """`landmark_mask` for a crop given landmarks in [-1, 1] (alignments.json 'landmarks')."""
  px = (np.asarray(landmarks_unit, np.float64) + 1.0) / 2.0 * size - 0.5
  return landmark_mask(px, (size, size), forehead, grow, blur)


def count_empty_masks(masks_NxSxSx1) -> int:
  """How many of the float (N,S,S,1) masks in [0, 1] are empty (under half a grey level
  everywhere): those swaps return their input unchanged."""
  return int(np.sum(np.max(np.asarray(masks_NxSxSx1), axis=(1, 2, 3)) < 0.5 / 255))


def empty_mask_warning(empty: int, faces: int) -> str:
  """The warning line for `empty` of `faces` swaps whose mask was empty."""
  return (f"warning: the model's mask is empty on {empty} of {faces} faces: those outputs "
          "are their inputs unchanged (a GAN whose mask collapsed in training)")
