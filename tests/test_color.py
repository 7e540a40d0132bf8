"""Tests for deepjax.ops.color against published Lab values and independent solves."""
import numpy as np
import pytest

from deepjax.ops import color

# sRGB (D65) -> CIE L*a*b* reference values (Bruce Lindbloom's calculator / CIE formulas).
LAB_REFERENCE = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
    ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
    ((0.5, 0.5, 0.5), (53.3889, 0.0, 0.0)),
]


@pytest.mark.parametrize("rgb,lab", LAB_REFERENCE)
def test_srgb_to_lab_reference_values(rgb, lab):
  np.testing.assert_allclose(color.srgb_to_lab(np.array(rgb)), lab, atol=0.02)


def test_lab_round_trip():
  rgb = np.random.default_rng(0).uniform(0, 1, (50, 3))
  np.testing.assert_allclose(color.lab_to_srgb(color.srgb_to_lab(rgb)), rgb, atol=1e-4)


def _textured(seed, mean, std, hw=(32, 32)):
  rng = np.random.default_rng(seed)
  return np.clip(rng.normal(mean, std, hw + (3,)), 0, 1).astype(np.float32)


def test_match_mean_std_lab_moves_statistics():
  src = _textured(1, [0.35, 0.45, 0.55], 0.05)
  ref = _textured(2, [0.6, 0.45, 0.35], 0.08)
  mask = np.zeros((32, 32), np.float32)
  mask[4:28, 6:26] = 1
  out = color.match_mean_std_lab(src, ref, mask)
  lab_o, lab_r = color.srgb_to_lab(out)[mask > 0], color.srgb_to_lab(ref)[mask > 0]
  np.testing.assert_allclose(lab_o.mean(0), lab_r.mean(0), atol=0.3)
  np.testing.assert_allclose(lab_o.std(0), lab_r.std(0), rtol=0.03)
  assert out.shape == src.shape and out.dtype == np.float32


def test_match_histogram_recovers_shifted_distribution():
  rng = np.random.default_rng(3)
  src = rng.uniform(0.1, 0.6, (40, 40, 3)).astype(np.float32)
  ref = rng.permutation(src.reshape(-1, 3)).reshape(src.shape) + 0.3  # same values, shifted
  out = color.match_histogram(src, ref)
  np.testing.assert_allclose(out, src + 0.3, atol=2e-3)
  # monotone per channel
  order = np.argsort(src[..., 0].ravel())
  assert np.all(np.diff(out[..., 0].ravel()[order]) >= -1e-6)


def test_alpha_blend():
  fg, bg = np.full((2, 2, 3), 1.0), np.zeros((2, 2, 3))
  np.testing.assert_allclose(color.alpha_blend(fg, bg, np.full((2, 2), 0.25)), 0.25)


def _dense_poisson(src, dst, mask):
  """Reference: the same discrete Poisson problem written pixel by pixel, dense solve."""
  h, w = mask.shape
  inside = mask.copy()
  inside[0, :] = inside[-1, :] = inside[:, 0] = inside[:, -1] = False
  pts = list(zip(*np.nonzero(inside)))
  index = {p: i for i, p in enumerate(pts)}
  a = np.zeros((len(pts), len(pts)))
  b = np.zeros((len(pts), 3))
  for i, (y, x) in enumerate(pts):
    a[i, i] = 4
    for qy, qx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
      b[i] += src[y, x] - src[qy, qx]
      if (qy, qx) in index:
        a[i, index[(qy, qx)]] = -1
      else:
        b[i] += dst[qy, qx]
  out = dst.copy()
  sol = np.linalg.solve(a, b)
  for i, p in enumerate(pts):
    out[p] = sol[i]
  return np.clip(out, 0, 1)


def test_seamless_blend_matches_dense_solve():
  rng = np.random.default_rng(4)
  src, dst = rng.uniform(0.3, 0.7, (2, 12, 14, 3))
  mask = np.zeros((12, 14), bool)
  mask[3:9, 2:11] = True
  mask[5, 11] = True
  np.testing.assert_allclose(color.seamless_blend(src, dst, mask),
                             _dense_poisson(src, dst, mask), atol=1e-5)


def test_seamless_blend_of_offset_copy_is_identity():
  dst = np.random.default_rng(5).uniform(0.2, 0.6, (20, 20, 3))
  mask = np.zeros((20, 20))
  mask[5:15, 4:16] = 1
  # the source has the background's gradients (an offset copy): the blend is the background
  np.testing.assert_allclose(color.seamless_blend(dst + 0.2, dst, mask), dst, atol=1e-5)
  np.testing.assert_allclose(color.seamless_blend(dst, dst, np.zeros((20, 20))), dst, atol=1e-7)
