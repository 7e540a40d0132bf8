"""Sharpness as a number: high-frequency energy of an image relative to a reference.

The measure is the variance of the 4-neighbour Laplacian of the grey image (luma
weights 0.299, 0.587, 0.114) over the valid interior, optionally restricted to a
region. A blurry swap has less Laplacian energy than the face it should look like;
noise has far more. `sharpness_ratio(out, ref)` is the mean over frames of
var(Laplacian(out)) / var(Laplacian(ref)): 1 is as sharp as the reference, < 1 is
blurrier, far above 1 is noise.
"""
import numpy as np


def laplacian(images_NxHxWx3: np.ndarray) -> np.ndarray:
  """The 4-neighbour Laplacian of each grey image: float64 (N, H-2, W-2)."""
  x = np.asarray(images_NxHxWx3, np.float64)
  g = x @ np.array([0.299, 0.587, 0.114])
  return (g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:]
          - 4.0 * g[:, 1:-1, 1:-1])


def laplacian_variance(images_NxHxWx3: np.ndarray, region_NxHxWx1=None) -> np.ndarray:
  """Variance of each image's Laplacian: float64 (N,).

  With `region_NxHxWx1` (weights in [0, 1], e.g. a face mask) the variance is over
  the region's interior pixels only (weighted); an empty region gives 0.
  """
  lap = laplacian(images_NxHxWx3)
  n = len(lap)
  if region_NxHxWx1 is None:
    return lap.reshape(n, -1).var(axis=1)
  w = np.asarray(region_NxHxWx1, np.float64)[:, 1:-1, 1:-1, 0].reshape(n, -1)
  lap = lap.reshape(n, -1)
  total = np.maximum(w.sum(axis=1), 1e-12)
  mean = (w * lap).sum(axis=1) / total
  return (w * (lap - mean[:, None]) ** 2).sum(axis=1) / total


def sharpness_ratio(out_NxHxWx3: np.ndarray, ref_NxHxWx3: np.ndarray, region_NxHxWx1=None) -> float:
  """Mean over frames of Laplacian variance(out) / Laplacian variance(ref); NaN for no frames."""
  if len(ref_NxHxWx3) == 0:
    return float("nan")
  v_ref = laplacian_variance(ref_NxHxWx3, region_NxHxWx1)
  v_out = laplacian_variance(out_NxHxWx3, region_NxHxWx1)
  return float(np.mean(v_out / np.maximum(v_ref, 1e-12)))
