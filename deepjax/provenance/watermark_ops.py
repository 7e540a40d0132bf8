"""Array helpers of the pixel watermark (deepjax.provenance.watermark): separable Gaussian
blurs with mirrored borders, block statistics at a coarse resolution and their upsampling, a
robust scale, and folding a residual into / tiling it from one period.

Luminance arrays are float32 (N, H, W); everything here is jit-able.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=16)
def gaussian_taps(sigma: float) -> np.ndarray:
  """float32 (2r+1,): a normalised Gaussian kernel of radius int(4 sigma + 0.5)."""
  r = int(4 * sigma + 0.5)
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def mirror_index(n: int, r: int) -> np.ndarray:
  """int32 (n + 2r,): positions -r .. n+r-1 of an axis of length n, mirrored inside as
  scipy.ndimage's mode="mirror" does (-1 -> 1, n -> n - 2, reflected again as needed)."""
  index = np.arange(-r, n + r)
  if n == 1:
    index = np.zeros_like(index)
  else:
    span = 2 * (n - 1)
    index = np.abs((index + span) % span)  # periodic with period 2(n-1) ...
    index = np.where(index >= n, span - index, index)  # ... and mirrored
  return index.astype(np.int32)


def blur_axis(y, axis: int, sigma: float):
  """Gaussian blur of float32 `y` along `axis` (mirror boundary)."""
  return blur_with(y, axis, gaussian_taps(sigma))


def blur_with(y, axis: int, taps: np.ndarray):
  """Filters float32 `y` along `axis` with symmetric `taps` (mirror boundary) as a sum
  of shifted copies: len(taps) multiply-adds per sample, fused by XLA into one pass."""
  n, r = y.shape[axis], len(taps) // 2
  if r < n:  # one reflection: a pad, much faster on CPU than the gather below
    widths = [(0, 0)] * y.ndim
    widths[axis] = (r, r)
    padded = jnp.pad(y, widths, mode="reflect")
  else:
    padded = jnp.take(y, jnp.asarray(mirror_index(n, r)), axis=axis)
  out = 0.0
  for i, wgt in enumerate(taps.tolist()):
    out = out + wgt * jax.lax.slice_in_dim(padded, i, i + n, axis=axis)
  return out


def block_means(y_NxHxW, f: int):
  """-> (mean, mean of squares), each (N, ceil(H/f), ceil(W/f)): over f x f blocks
  (edge-padded to whole blocks; strided slices, faster than a reshape on CPU)."""
  _, h, w = y_NxHxW.shape
  y = jnp.pad(y_NxHxW, ((0, 0), (0, -h % f), (0, -w % f)), mode="edge")
  parts = [y[:, i::f, j::f] for i in range(f) for j in range(f)]
  return sum(parts) / float(f * f), sum(q * q for q in parts) / float(f * f)


def upsample_weights(f: int) -> np.ndarray:
  """float32 (f, 3): linear-interpolation weights of the previous, own and next block
  centre for each of the f pixels of a block."""
  u = (np.arange(f) + 0.5) / f - 0.5  # pixel position relative to its block centre
  return np.stack([np.maximum(-u, 0), 1 - np.abs(u), np.maximum(u, 0)], 1).astype(np.float32)


def _upsample_axis(c, axis: int, f: int):
  """Linear interpolation of block centres along `axis` (1 or 2) of (N, a, b): that axis
  f times longer, edge values held beyond the outer centres."""
  n = c.shape[axis]
  pad = [(0, 0)] * 3
  pad[axis] = (1, 1)
  padded = jnp.pad(c, pad, mode="edge")
  wts = upsample_weights(f)
  shape = [1, 1, 1, 1]
  shape[axis + 1] = f
  out = 0.0
  for d in range(3):
    shifted = jnp.expand_dims(jax.lax.slice_in_dim(padded, d, d + n, axis=axis), axis + 1)
    out = out + shifted * jnp.asarray(wts[:, d].reshape(shape))
  size = list(c.shape)
  size[axis] = n * f
  return out.reshape(size)


def upsample(c_Nxhxw, f: int, h: int, w: int):
  """(N, h, w): linear interpolation of f x f block centres to pixels (edge values held
  beyond the outer centres), cropped; separable, rows first (3 taps per output value
  per axis)."""
  c = jax.lax.optimization_barrier(c_Nxhxw)
  return _upsample_axis(_upsample_axis(c, 1, f), 2, f)[:, :h, :w]


def coarse_blur(y_NxHxW, sigma: float, f: int):
  """Gaussian blur (sigma pixels) of (N, H, W) computed on f x f block means: the
  coarse Gaussian's width is chosen so that block averaging, it and the linear
  upsampling together have the variance sigma**2."""
  _, h, w = y_NxHxW.shape
  coarse = block_means(y_NxHxW, f)[0]
  sigma_c = np.sqrt(max(sigma ** 2 - (f * f - 1) / 12 - f * f / 6, 0.25)) / f
  coarse = blur_axis(blur_axis(coarse, 1, sigma_c), 2, sigma_c)
  return upsample(coarse, f, h, w)


def std_weight(std_Nxhxw, power: float):
  """(N, h, w): (local luminance std + 1) ** power with mean 1 per frame, from the block
  stds of `local_std`."""
  activity = std_Nxhxw + 1.0
  weight = 1.0 / activity if power == -1.0 else activity ** power
  return weight / jnp.mean(weight, axis=(1, 2), keepdims=True)


def local_std(y_NxHxW, f: int = 4):
  """(N, ceil(H/f), ceil(W/f)): the luminance std per f x f block over a window of about
  2f x 2f pixels (f x f block moments, tent-weighted over 3 x 3 blocks)."""
  mean, sq = block_means(y_NxHxW, f)
  tent = lambda a, axis: blur_with(a, axis, np.array([0.25, 0.5, 0.25], np.float32))
  mean, sq = (tent(tent(a, 1), 2) for a in (mean, sq))
  return jnp.sqrt(jnp.maximum(sq - mean * mean, 0.0))


def robust_scale(a_NxM, iters: int = 24):
  """(N, 1, 1): the median of each row of non-negative `a_NxM`, by bisection on the
  count below a threshold (a sort is slow on CPU); exact to max / 2**iters."""
  hi = jnp.max(a_NxM, axis=1) * (1 + 1e-6) + 1e-12
  lo = jnp.zeros_like(hi)
  half = a_NxM.shape[1] / 2

  def step(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    below = jnp.sum(a_NxM < mid[:, None], axis=1)
    return jnp.where(below >= half, lo, mid), jnp.where(below >= half, mid, hi)

  lo, hi = jax.lax.fori_loop(0, iters, step, (lo, hi))
  return (0.5 * (lo + hi))[:, None, None]


def fold_batch(r_NxHxW, p: int):
  n, h, w = r_NxHxW.shape
  r = jnp.pad(r_NxHxW, ((0, 0), (0, -h % p), (0, -w % p)))
  return r.reshape(n, r.shape[1] // p, p, r.shape[2] // p, p).sum((1, 3))


def repeat_blocks(a_Nxhxw, f: int):
  """(N, h*f, w*f): each value of (N, h, w) repeated over an f x f block."""
  return jnp.repeat(jnp.repeat(a_Nxhxw, f, 1), f, 2)


def tile(a_NxPxP, h: int, w: int):
  """(N, h, w): periodic tiles of (N, P, P), cropped."""
  n, p, _ = a_NxPxP.shape
  reps = (-(-h // p), -(-w // p))
  a = jnp.broadcast_to(a_NxPxP[:, None, :, None, :], (n, reps[0], p, reps[1], p))
  return a.reshape(n, reps[0] * p, reps[1] * p)[:, :h, :w]


def chip_correlate(x_NxPxP, filter_hat, chip_px: int):
  """(N, C, C): the correlation of each (N, P, P) tile with the filter's copy at every chip."""
  p = x_NxPxP.shape[-1]
  y = jnp.fft.irfft2(jnp.fft.rfft2(x_NxPxP) * jnp.conj(filter_hat)[None], s=(p, p))
  return y[:, ::chip_px, ::chip_px]


def chip_synthesise(u_NxCxC, filter_hat, chip_px: int):
  """(N, P, P): the sum over chips of each chip's value times the filter's copy there."""
  n, c, _ = u_NxCxC.shape
  p = c * chip_px
  deltas = jnp.zeros((n, p, p), jnp.float32).at[:, ::chip_px, ::chip_px].set(u_NxCxC)
  return jnp.fft.irfft2(jnp.fft.rfft2(deltas) * filter_hat[None], s=(p, p))
