"""Colour transfer and blending for pasting a generated face into a frame (numpy).

All images are float (H, W, 3) RGB in [0, 1] (uint8 inputs are accepted and
scaled by 1/255); masks are (H, W) or (H, W, 1) floats in [0, 1] (> 0.5 counts as
"inside" where a hard region is needed). Functions return float32 in [0, 1].

* `srgb_to_lab` / `lab_to_srgb`: CIE L*a*b* with the D65 white point (IEC 61966-2-1
  sRGB companding, CIE 1976 formulas); L in [0, 100].
* `match_mean_std_lab`: Reinhard et al. 2001 style transfer, per Lab channel,
  statistics from the masked pixels of each image.
* `match_histogram`: per-RGB-channel CDF matching on masked pixels.
* `alpha_blend`: `fg * a + bg * (1 - a)`.
* `seamless_blend`: Poisson image editing (Perez et al. 2003, "seamless clone"
  with the source gradients as guidance), solved exactly with a sparse LU
  factorisation (scipy.sparse.linalg.splu) over the mask's pixels only; one
  factorisation serves the three channels. Cost grows with the masked pixel count:
  a 256x256 face mask solves in well under a second.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg

# sRGB (D65) linear RGB -> XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = _RGB_TO_XYZ.sum(1)  # XYZ of RGB (1, 1, 1): (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0


def _float01(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  return x.astype(np.float32)


def _mask2d(mask, hw) -> np.ndarray:
  if mask is None:
    return np.ones(hw, np.float32)
  m = np.asarray(mask, np.float32)
  return m.reshape(hw)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """(..., 3) sRGB in [0, 1] -> (..., 3) float32 L*a*b* (D65)."""
  c = np.asarray(rgb, np.float64)
  lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
  xyz = lin @ _RGB_TO_XYZ.T / _WHITE_D65
  f = np.where(xyz > _DELTA ** 3, np.cbrt(xyz), xyz / (3 * _DELTA ** 2) + 4.0 / 29.0)
  lab = np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                  200.0 * (f[..., 1] - f[..., 2])], -1)
  return lab.astype(np.float32)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
  """(..., 3) L*a*b* (D65) -> (..., 3) float32 sRGB, clipped to [0, 1]."""
  lab = np.asarray(lab, np.float64)
  fy = (lab[..., 0] + 16.0) / 116.0
  f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
  xyz = np.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4.0 / 29.0)) * _WHITE_D65
  lin = xyz @ _XYZ_TO_RGB.T
  lin = np.clip(lin, 0.0, None)
  c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
  return np.clip(c, 0.0, 1.0).astype(np.float32)


def _masked_stats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  w = w.reshape(-1)
  x = x.reshape(-1, x.shape[-1]).astype(np.float64)
  total = w.sum()
  if total <= 0:
    raise ValueError("mask is empty")
  mean = (x * w[:, None]).sum(0) / total
  var = (((x - mean) ** 2) * w[:, None]).sum(0) / total
  return mean, np.sqrt(var)


def match_mean_std_lab(src: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None,
                       ref_mask: np.ndarray | None = None) -> np.ndarray:
  """Gives `src` the per-channel Lab mean and std of `ref` (inside the masks).

  Args:
    src: (H, W, 3) image to recolour.
    ref: (H', W', 3) image whose colours to take.
    mask: (H, W) weights for the statistics of `src` (and of `ref` when `ref_mask` is
      None and the sizes agree); None = all pixels.
    ref_mask: optional separate weights for `ref`.
  Returns:
    (H, W, 3) float32 in [0, 1]: the whole of `src`, recoloured.
  """
  src, ref = _float01(src), _float01(ref)
  ms = _mask2d(mask, src.shape[:2])
  if ref_mask is None:
    ref_mask = mask if (mask is not None and ref.shape[:2] == src.shape[:2]) else None
  mr = _mask2d(ref_mask, ref.shape[:2])
  lab_s, lab_r = srgb_to_lab(src), srgb_to_lab(ref)
  mu_s, sd_s = _masked_stats(lab_s, ms)
  mu_r, sd_r = _masked_stats(lab_r, mr)
  out = (lab_s - mu_s) * (sd_r / np.maximum(sd_s, 1e-6)) + mu_r
  return lab_to_srgb(out)


def match_histogram(src: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None,
                    ref_mask: np.ndarray | None = None) -> np.ndarray:
  """Per-RGB-channel histogram matching of `src` to `ref` on masked (> 0.5) pixels.

  Each value of `src` is mapped through src-CDF -> ref-inverse-CDF (linear
  interpolation of the empirical quantiles). Returns (H, W, 3) float32 in [0, 1].
  """
  src, ref = _float01(src), _float01(ref)
  ms = _mask2d(mask, src.shape[:2]) > 0.5
  if ref_mask is None:
    ref_mask = mask if (mask is not None and ref.shape[:2] == src.shape[:2]) else None
  mr = _mask2d(ref_mask, ref.shape[:2]) > 0.5
  if not ms.any() or not mr.any():
    raise ValueError("mask is empty")
  out = np.empty_like(src)
  for c in range(src.shape[-1]):
    s_vals = np.sort(src[..., c][ms])
    r_vals = np.sort(ref[..., c][mr])
    s_q = (np.arange(s_vals.size) + 0.5) / s_vals.size
    r_q = (np.arange(r_vals.size) + 0.5) / r_vals.size
    # mid-rank quantile of each src value (ties share their average rank)
    lo = np.searchsorted(s_vals, src[..., c], side="left")
    hi = np.searchsorted(s_vals, src[..., c], side="right")
    q = np.clip((lo + hi) / 2.0 / s_vals.size, s_q[0], s_q[-1])
    out[..., c] = np.interp(q, r_q, r_vals)
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def alpha_blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """`fg * alpha + bg * (1 - alpha)`; alpha (H, W) or (H, W, 1) in [0, 1]. float32."""
  fg, bg = _float01(fg), _float01(bg)
  a = np.clip(np.asarray(alpha, np.float32).reshape(fg.shape[:2] + (1,)), 0.0, 1.0)
  return (fg * a + bg * (1.0 - a)).astype(np.float32)


def seamless_blend(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Poisson blending: inside the mask, the gradients of `src`; on its border, `dst`.

  Solves, for every pixel p with mask > 0.5 (image-border pixels excluded),
  `4 f_p - sum_{q in N(p), inside} f_q = sum_{q in N(p), outside} dst_q
   + sum_{q in N(p)} (src_p - src_q)` with N the 4-neighbours.

  Args:
    src: (H, W, 3) the content to insert (already placed, same frame as dst).
    dst: (H, W, 3) the background.
    mask: (H, W) region to fill.
  Returns:
    (H, W, 3) float32 in [0, 1]; equal to `dst` outside the mask.
  """
  src, dst = _float01(src), _float01(dst)
  h, w = dst.shape[:2]
  inside = _mask2d(mask, (h, w)) > 0.5
  inside[0, :] = inside[-1, :] = False
  inside[:, 0] = inside[:, -1] = False
  out = dst.astype(np.float64).copy()
  if not inside.any():
    return out.astype(np.float32)
  ys, xs = np.nonzero(inside)
  y0, y1, x0, x1 = ys.min() - 1, ys.max() + 2, xs.min() - 1, xs.max() + 2
  ins = inside[y0:y1, x0:x1]
  s = src[y0:y1, x0:x1].astype(np.float64)
  d = dst[y0:y1, x0:x1].astype(np.float64)
  idx = -np.ones(ins.shape, np.int64)
  n = int(ins.sum())
  idx[ins] = np.arange(n)
  py, px = np.nonzero(ins)
  rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
  rhs = np.zeros((n, s.shape[-1]))
  for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
    qy, qx = py + dy, px + dx  # always inside the padded box
    rhs += s[py, px] - s[qy, qx]
    q_in = ins[qy, qx]
    rows.append(np.arange(n)[q_in])
    cols.append(idx[qy[q_in], qx[q_in]])
    vals.append(-np.ones(int(q_in.sum())))
    rhs[~q_in] += d[qy[~q_in], qx[~q_in]]
  a = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n, n))
  solution = splinalg.splu(a).solve(rhs)
  region = out[y0:y1, x0:x1]
  region[ins] = solution
  return np.clip(out, 0.0, 1.0).astype(np.float32)
