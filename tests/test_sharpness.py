"""deepjax.eval.sharpness: Laplacian-energy ratios with known answers, whole frame and region."""
import numpy as np
import pytest

from deepjax.eval import sharpness


def _blur(img):
  return (img + np.roll(img, 1, 1) + np.roll(img, 1, 2) + np.roll(img, (1, 1), (1, 2))) / 4


def test_sharpness_of_blurred_image():
  img = np.random.default_rng(0).uniform(size=(2, 32, 32, 3))
  blurred = _blur(img)
  assert sharpness.sharpness_ratio(img, img) == pytest.approx(1.0)
  assert sharpness.sharpness_ratio(blurred, img) < 0.5
  assert sharpness.sharpness_ratio(img, blurred) > 2.0
  flat = np.full((1, 8, 8, 3), 0.5)
  assert sharpness.laplacian_variance(flat)[0] == 0.0
  assert np.isnan(sharpness.sharpness_ratio(img[:0], img[:0]))


def test_region_counts_only_its_pixels():
  rng = np.random.default_rng(1)
  img = np.full((1, 32, 32, 3), 0.5)
  img[:, 16:] = rng.uniform(size=(1, 16, 32, 3))     # texture in the bottom half only
  top = np.zeros((1, 32, 32, 1))
  top[:, 2:12] = 1.0                                 # a region well inside the flat half
  bottom = 1.0 - top
  bottom[:, :20] = 0.0
  assert sharpness.laplacian_variance(img, top)[0] == pytest.approx(0.0, abs=1e-12)
  assert sharpness.laplacian_variance(img, bottom)[0] > sharpness.laplacian_variance(img)[0]
  # Blurring the flat half leaves the textured region's ratio unchanged; blurring the
  # textured half lowers it.
  out = img.copy()
  out[:, 16:] = _blur(img)[:, 16:]
  assert sharpness.sharpness_ratio(img, img, bottom) == pytest.approx(1.0)
  assert sharpness.sharpness_ratio(out, img, bottom) < 0.5
  assert np.isfinite(sharpness.sharpness_ratio(img, img, np.zeros_like(top)))
