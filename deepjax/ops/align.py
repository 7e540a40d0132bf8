"""Face alignment: Umeyama similarity, a 68-point mean face, crop and paste back.

Coordinates. Frame and crop *pixel* coordinates are (x, y) with pixel centres at
integers (pixel (0, 0) covers [-0.5, 0.5]^2). An alignment matrix is a 2x3 affine
(a similarity here) that maps frame pixels to crop pixels: `[x', y'] = M @ [x, y, 1]`.
Normalised crop coordinates follow docs/CONTRACTS.md (align_corners=False):
`u = (x' + 0.5) / size * 2 - 1`, so -1/+1 are the crop's outer edges.

Template space ("mean-face units"). `MEAN_FACE_68` is a 68-point iBUG-order face
in which the 51 inner points (brows, nose, eyes, mouth: 17..67) span exactly
[0, 1] x [0, 1]; the jaw (0..16) lies outside that box. It was derived for this
project (see `derive_mean_face`): dlib 68-point landmarks of 491 real faces
(the largest face in every 10th frame of the 14 clips in /work/shared/data/videos,
479 faces, plus the 12 human photos in /work/shared/data/photos; HOG + dlib
predictor) were aligned by generalised Procrustes analysis on the inner 51
points (Umeyama to the running mean, 10 rounds), averaged, rotated so that
left/right pairs are level, mirror-symmetrised (iBUG pairs averaged with x
reflected) and rescaled so the inner points fill the unit square.
`derive_mean_face(landmarks)` redoes this from any (N, 68, 2) set.

Centring (a simplified take on faceswap's "legacy", "face" and "head" crops):
the face is registered to the template by Umeyama on the 51 inner points (the jaw
is left out because it slides with pose); the crop is then a square in template
space whose centre and side depend on `centering`:
* "legacy": centre of the inner face box (0.5, 0.5), side 1.7 units: tight
  (at coverage 0.75 it cuts the chin, which sits at y = 1.26).
* "face": centre (0.5, 0.48), side 2.2 units: brows-to-chin plus forehead; at
  coverage 0.75 the chin and both jaw ends are inside. Moved sideways to the
  middle of the jaw outline (points 0 and 16), which follows the head's centre
  when it turns (faceswap fits a 3-D pose for this; we do not).
* "head": centre (0.5, 0.3), side 3.0 units: the whole head with hair.
`coverage` in (0, 1] then keeps the central fraction of that square (faceswap's
coverage ratio): the crop side is `side * coverage`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from deepjax.errors import UserError

# fmt: off
# (68, 2) float32, (x, y) in mean-face units; see the module docstring for how it was made.
MEAN_FACE_68 = np.array([
    [-0.0952, 0.2581], [-0.0858, 0.4278], [-0.0601, 0.5951], [-0.0259, 0.7573],
    [0.0286, 0.9093], [0.1144, 1.0430], [0.2253, 1.1535], [0.3541, 1.2376],
    [0.5000, 1.2642], [0.6459, 1.2376], [0.7747, 1.1535], [0.8856, 1.0430],
    [0.9714, 0.9093], [1.0259, 0.7573], [1.0601, 0.5951], [1.0858, 0.4278],
    [1.0952, 0.2581], [0.0000, 0.1023], [0.0738, 0.0244], [0.1813, 0.0000],
    [0.2922, 0.0159], [0.3946, 0.0639], [0.6054, 0.0639], [0.7078, 0.0159],
    [0.8187, 0.0000], [0.9262, 0.0244], [1.0000, 0.1023], [0.5000, 0.2179],
    [0.5000, 0.3295], [0.5000, 0.4388], [0.5000, 0.5509], [0.3872, 0.6420],
    [0.4420, 0.6616], [0.5000, 0.6778], [0.5580, 0.6616], [0.6128, 0.6420],
    [0.1200, 0.2454], [0.1873, 0.2052], [0.2687, 0.2069], [0.3394, 0.2624],
    [0.2637, 0.2796], [0.1819, 0.2787], [0.6606, 0.2624], [0.7313, 0.2069],
    [0.8127, 0.2052], [0.8800, 0.2454], [0.8181, 0.2787], [0.7363, 0.2796],
    [0.2862, 0.8740], [0.3636, 0.8184], [0.4430, 0.7890], [0.5000, 0.8056],
    [0.5570, 0.7890], [0.6364, 0.8184], [0.7138, 0.8740], [0.6395, 0.9569],
    [0.5625, 0.9934], [0.5000, 1.0000], [0.4375, 0.9934], [0.3605, 0.9569],
    [0.3225, 0.8749], [0.4423, 0.8540], [0.5000, 0.8590], [0.5577, 0.8540],
    [0.6775, 0.8749], [0.5589, 0.9017], [0.5000, 0.9090], [0.4411, 0.9017],
], np.float32)
# fmt: on

INNER = np.arange(17, 68)  # brows, nose, eyes, mouth: used for registration
# iBUG left/right pairs (index, mirror index), for symmetrising a template.
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] +
    [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40] +
    [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] +
    [67, 66, 65])

# centering -> (centre x, centre y, side) in mean-face units, before coverage.
CENTERINGS = {"legacy": (0.5, 0.5, 1.7), "face": (0.5, 0.48, 2.2), "head": (0.5, 0.30, 3.0)}


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
  """Least-squares similarity (or rigid) transform taking `src` to `dst` (Umeyama 1991).

  Args:
    src, dst: (N, 2) point sets in correspondence, N >= 2.
    estimate_scale: False gives a rotation + translation only.
  Returns:
    (3, 3) float64 homogeneous matrix T with `dst ~ (T @ [src, 1].T)[:2].T`.
  """
  src = np.asarray(src, np.float64)
  dst = np.asarray(dst, np.float64)
  if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 2:
    raise ValueError(f"umeyama needs two (N, d) arrays with N >= 2, got {src.shape}, {dst.shape}")
  n, d = src.shape
  mu_s, mu_d = src.mean(0), dst.mean(0)
  s0, d0 = src - mu_s, dst - mu_d
  cov = d0.T @ s0 / n
  u, sig, vt = np.linalg.svd(cov)
  e = np.ones(d)
  if np.linalg.det(u) * np.linalg.det(vt) < 0:
    e[-1] = -1.0
  rot = u @ np.diag(e) @ vt
  var_s = (s0 ** 2).sum() / n
  scale = (sig * e).sum() / var_s if (estimate_scale and var_s > 0) else 1.0
  t = np.eye(d + 1)
  t[:d, :d] = scale * rot
  t[:d, d] = mu_d - scale * rot @ mu_s
  return t


def umeyama_jnp(src, dst, estimate_scale: bool = True):
  """jit-able `umeyama` for (..., N, 2) jax arrays: returns (..., 3, 3) float32."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel  (keeps the CLI light)
  mu_s, mu_d = src.mean(-2, keepdims=True), dst.mean(-2, keepdims=True)
  s0, d0 = src - mu_s, dst - mu_d
  n = src.shape[-2]
  cov = jnp.swapaxes(d0, -1, -2) @ s0 / n
  u, sig, vt = jnp.linalg.svd(cov)
  sign = jnp.sign(jnp.linalg.det(u) * jnp.linalg.det(vt))
  sign = jnp.where(sign == 0, 1.0, sign)
  e = jnp.stack([jnp.ones_like(sign), sign], -1)
  rot = (u * e[..., None, :]) @ vt
  var_s = (s0 ** 2).sum((-1, -2)) / n
  scale = (sig * e).sum(-1) / var_s if estimate_scale else jnp.ones_like(var_s)
  a = scale[..., None, None] * rot
  t = mu_d[..., 0, :] - (a @ mu_s[..., 0, :, None])[..., 0]
  top = jnp.concatenate([a, t[..., :, None]], -1)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0], top.dtype), top.shape[:-2] + (1, 3))
  return jnp.concatenate([top, bottom], -2)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Applies a 2x3 (or 3x3) affine to (N, 2) points; returns (N, 2) float64."""
  m = np.asarray(matrix, np.float64)
  p = np.asarray(points, np.float64)
  return p @ m[:2, :2].T + m[:2, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
  """Inverse of a 2x3 affine, as 2x3."""
  m = np.eye(3)
  m[:2] = np.asarray(matrix, np.float64)[:2]
  return np.linalg.inv(m)[:2]


def derive_mean_face(landmarks_Nx68x2: np.ndarray, iters: int = 10,
                     symmetric: bool = True) -> np.ndarray:
  """Generalised Procrustes mean of many 68-point faces, in mean-face units.

  Every face is registered (Umeyama on the inner 51 points) to the running mean,
  the mean is recomputed, `iters` times; then (optionally) mirror-symmetrised and
  rescaled so the inner 51 points span [0, 1] x [0, 1].
  Returns (68, 2) float32.
  """
  faces = np.asarray(landmarks_Nx68x2, np.float64)
  if faces.ndim != 3 or faces.shape[1:] != (68, 2) or len(faces) == 0:
    raise ValueError(f"need (N, 68, 2) landmarks, got {faces.shape}")
  mean = faces[0].copy()
  for _ in range(iters):
    aligned = np.stack([transform_points(umeyama(f[INNER], mean[INNER]), f) for f in faces])
    mean = aligned.mean(0)
    lo, hi = mean[INNER].min(0), mean[INNER].max(0)
    mean = (mean - lo) / (hi - lo)  # fixes the gauge (scale, position) between rounds
  if symmetric:
    # Rotate so left/right pairs are horizontal, then average with the mirror image.
    diff = mean - mean[MIRROR_68]
    keep = np.linalg.norm(diff, axis=1) > 1e-6
    diff = diff[keep] * np.sign(diff[keep, :1] + 1e-12)
    angle = np.arctan2(diff[:, 1].sum(), diff[:, 0].sum())
    c, s = np.cos(-angle), np.sin(-angle)
    mean = mean @ np.array([[c, s], [-s, c]])
    axis = mean[:, 0].mean()
    mirrored = mean[MIRROR_68] * np.array([-1.0, 1.0]) + np.array([2 * axis, 0.0])
    mean = 0.5 * (mean + mirrored)
  lo, hi = mean[INNER].min(0), mean[INNER].max(0)
  mean = (mean - lo) / (hi - lo)  # the inner points fill the unit square
  return mean.astype(np.float32)


def crop_square(landmarks: np.ndarray, coverage: float = 0.75,
                centering: str = "face") -> tuple[np.ndarray, np.ndarray, float]:
  """Registers a face to the template and picks the crop square in template units.

  Returns (T 3x3 frame->template, centre (2,), side).
  """
  if centering not in CENTERINGS:
    raise UserError(f"unknown centering {centering!r}; choose one of {', '.join(CENTERINGS)}")
  if not 0.0 < coverage <= 1.0:
    raise UserError(f"coverage must be in (0, 1], got {coverage}")
  lm = np.asarray(landmarks, np.float64)
  if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
    raise ValueError(f"need finite (68, 2) landmarks, got {lm.shape}")
  t = umeyama(lm[INNER], MEAN_FACE_68[INNER])
  cx, cy, side = CENTERINGS[centering]
  if centering != "legacy":
    jaw = transform_points(t, lm[[0, 16]])
    shift = jaw.mean(0)[0] - MEAN_FACE_68[[0, 16]].mean(0)[0]
    cx += float(np.clip(shift, -0.3, 0.3))
  return t, np.array([cx, cy]), side * coverage


def alignment_matrix(landmarks: np.ndarray, size: int, coverage: float = 0.75,
                     centering: str = "face") -> np.ndarray:
  """2x3 similarity mapping frame pixels to the pixels of a `size` x `size` crop.

  Args:
    landmarks: (68, 2) iBUG landmarks in frame pixels (x, y).
    size: crop side in pixels.
    coverage: fraction (0, 1] of the centring's square kept (smaller = tighter).
    centering: "face", "head" or "legacy" (see the module docstring).
  Returns:
    (2, 3) float64.
  """
  t, centre, side = crop_square(landmarks, coverage, centering)
  s = size / side
  # template -> crop pixels: the square's left/top edge lands at crop coordinate -0.5.
  to_crop = np.array([[s, 0.0, -0.5 - s * (centre[0] - side / 2)],
                      [0.0, s, -0.5 - s * (centre[1] - side / 2)], [0.0, 0.0, 1.0]])
  return (to_crop @ t)[:2]


def pixels_to_unit(points: np.ndarray, size: int) -> np.ndarray:
  """Crop pixel coords -> [-1, 1] (align_corners=False). (N, 2) -> (N, 2) float32."""
  return ((np.asarray(points, np.float64) + 0.5) / size * 2.0 - 1.0).astype(np.float32)


def unit_to_pixels(points: np.ndarray, size: int) -> np.ndarray:
  """[-1, 1] -> crop pixel coords (inverse of `pixels_to_unit`)."""
  return ((np.asarray(points, np.float64) + 1.0) / 2.0 * size - 0.5).astype(np.float32)


def warp_affine(image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int],
                border: str = "constant", order: int = 1) -> np.ndarray:
  """Resamples `image` so that output pixel p shows image pixel `inverse(matrix) @ p`.

  Args:
    image: (H, W) or (H, W, C), any numeric dtype.
    matrix: 2x3 affine mapping image pixels to output pixels.
    out_hw: output (height, width).
    border: "constant" (zeros outside) or "edge" (replicate the border).
    order: 1 bilinear (default), 0 nearest, 3 cubic.
  Returns:
    (h, w[, C]) float32.
  """
  inv = invert_affine(matrix)
  # scipy works in (row, col): input_rc = A @ output_rc + offset.
  a = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]])
  off = np.array([inv[1, 2], inv[0, 2]])
  mode = {"constant": "constant", "edge": "nearest"}[border]
  img = np.asarray(image, np.float32)
  chans = img[..., None] if img.ndim == 2 else img
  out = np.stack([ndimage.affine_transform(chans[..., c], a, off, output_shape=tuple(out_hw),
                                           order=order, mode=mode, cval=0.0, prefilter=order > 1)
                  for c in range(chans.shape[-1])], -1)
  return out[..., 0] if img.ndim == 2 else out


def matrix_scale(matrix: np.ndarray) -> float:
  """Linear scale of a 2x3 similarity (crop pixels per frame pixel)."""
  return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))


def crop(frame: np.ndarray, matrix: np.ndarray, size: int, border: str = "constant",
         antialias: bool = True) -> np.ndarray:
  """Aligned face crop: (H, W, C) frame -> (size, size, C), same dtype (uint8 rounded).

  Only the crop's footprint in the frame is resampled. When the crop is smaller
  than the face in the frame (scale < 1) and `antialias`, that region is first
  shrunk with Pillow's antialiasing filter to about the crop's scale, so a 300 px
  face in a 64 px crop does not alias (plain bilinear would skip pixels).
  """
  frame = np.asarray(frame)
  m = np.asarray(matrix, np.float64)
  x0, y0, x1, y1 = crop_footprint(m, size, frame.shape[:2], pad=2)
  if x1 <= x0 or y1 <= y0:  # the crop lies entirely outside the frame
    return np.zeros((size, size) + frame.shape[2:], frame.dtype)
  region = frame[y0:y1, x0:x1]
  # region pixel (x, y) = frame pixel (x + x0, y + y0)
  m = m.copy()
  m[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64)
  scale = matrix_scale(m)
  if antialias and scale < 0.9 and frame.dtype == np.uint8 and min(region.shape[:2]) >= 4:
    from PIL import Image  # pylint: disable=import-outside-toplevel
    h, w = region.shape[:2]
    nw, nh = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
    rx, ry = nw / w, nh / h
    img = Image.fromarray(region if region.ndim == 2 or region.shape[-1] != 1 else region[..., 0])
    region = np.asarray(img.resize((nw, nh), Image.BILINEAR, reducing_gap=None))
    region = region.reshape((nh, nw) + frame.shape[2:])
    # Pillow's resize maps pixel centres by x_small = (x_big + 0.5) * r - 0.5.
    small_to_big = np.array([[1 / rx, 0, 0.5 / rx - 0.5], [0, 1 / ry, 0.5 / ry - 0.5], [0, 0, 1]])
    m = m @ small_to_big
  out = warp_affine(region, m, (size, size), border)
  if frame.dtype == np.uint8:
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
  return out.astype(frame.dtype)


def crop_footprint(matrix: np.ndarray, size: int, frame_hw: tuple[int, int],
                   pad: int = 0) -> tuple[int, ...]:
  """Frame-pixel bounding box (x0, y0, x1, y1), exclusive ends, clipped, of a crop's area."""
  corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
  pts = transform_points(invert_affine(matrix), corners)
  h, w = frame_hw
  x0, y0 = np.floor(pts.min(0)).astype(int) - pad
  x1, y1 = np.ceil(pts.max(0)).astype(int) + 1 + pad
  return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def paste_back(frame: np.ndarray, crop_image: np.ndarray, matrix: np.ndarray,
               mask: np.ndarray | None = None) -> np.ndarray:
  """Warps a (possibly edited) crop back into the frame and alpha-blends it.

  Args:
    frame: (H, W, C) uint8 or float frame the crop came from.
    crop_image: (S, S, C) crop (same value range as `frame`).
    matrix: the 2x3 frame->crop matrix used by `crop`.
    mask: (S, S) or (S, S, 1) float in [0, 1] in crop space; None = the whole crop.
  Returns:
    (H, W, C) new frame, dtype of `frame`; pixels outside the crop's footprint are
    untouched.
  """
  frame = np.asarray(frame)
  size = crop_image.shape[0]
  if mask is None:
    mask = np.ones((size, size), np.float32)
  mask = np.asarray(mask, np.float32).reshape(size, size)
  x0, y0, x1, y1 = crop_footprint(matrix, size, frame.shape[:2])
  out = frame.copy()
  if x1 <= x0 or y1 <= y0:
    return out
  # Only the crop's footprint is resampled: region pixel (x, y) = frame pixel (x + x0, y + y0).
  m = np.asarray(matrix, np.float64)
  region_to_crop = m.copy()
  region_to_crop[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64)
  hw = (y1 - y0, x1 - x0)
  # warp_affine takes image->output; here image = crop, output = region: crop->region matrix.
  crop_to_region = invert_affine(region_to_crop)
  face = warp_affine(crop_image, crop_to_region, hw, border="edge")
  alpha = warp_affine(mask, crop_to_region, hw, border="constant")[..., None]
  alpha = np.clip(alpha, 0.0, 1.0)
  region = frame[y0:y1, x0:x1].astype(np.float32)
  blended = region * (1.0 - alpha) + face * alpha
  if frame.dtype == np.uint8:
    blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
  out[y0:y1, x0:x1] = blended.astype(frame.dtype)
  return out
