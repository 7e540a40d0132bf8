"""Reading deepjax's watermark (`deepjax.provenance.watermark` describes the design):
fold the weighted residual into one tile, find the shift, Viterbi-decode, check the CRC.

Frames are uint8 (N, H, W, 3) RGB; payloads are Python ints in [0, 2**32).
"""
import dataclasses
import functools
from typing import Optional

import numpy as np

from deepjax.provenance import watermark_code as wcode
from deepjax.provenance.watermark_carrier import (LUMA, WatermarkConfig, carrier,
                                                  false_positive_rate, periodic_blur)

__all__ = ["Detection", "detect_frames", "detect_clip", "residual", "fold", "period_at",
           "min_readable_side", "templates_at", "soft_bits", "decide"]


@dataclasses.dataclass
class Detection:
  """What `detect_frames` / `detect_clip` find.

  found: the CRC-32 matched (payload is then the payload); payload: int or None;
  bits: the 64 decoded message bits (payload, CRC-32; 0/1); raw_bits: the 192 channel
  bits' hard decisions (0/1, de-whitened) before decoding;
  z: mean |soft bit| in units of its spread over all shifts (bit reliability; about
  0.8 on unmarked frames); scale, shift: where the mark was found;
  false_positive_rate: bound on the chance that an unmarked input gives found=True.
  """
  found: bool
  payload: Optional[int]
  bits: np.ndarray
  raw_bits: np.ndarray
  z: float
  scale: float
  shift: tuple
  false_positive_rate: float


def residual(frame: np.ndarray, scale: float = 1.0,
             config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """float32 (H, W): luminance of uint8 (H, W, 3) minus its blur, clipped at outliers,
  times (its local RMS + `weight_offset`) ** -`weight_power`.

  The blur is `blur_sigma * scale` pixels (the same filter as at marking, for a frame
  rescaled by `scale`) and the RMS window `weight_sigma * scale` (marking approximates this
  weighting from its 4x4 block luminance std).
  """
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  y = frame.astype(np.float32) @ LUMA
  r = y - ndimage.gaussian_filter(y, config.blur_sigma * scale, mode="mirror")
  if config.weight_power:
    local = np.sqrt(ndimage.gaussian_filter(r * r, config.weight_sigma * scale, mode="mirror"))
  if config.clip_residual:
    t = config.clip_residual * 1.4826 * np.median(np.abs(r[::4, ::4])) + 1e-3
    r = np.clip(r, -t, t)
  if config.weight_power:
    r = r * (local + config.weight_offset) ** -config.weight_power
  return r


def fold(r: np.ndarray, period: int) -> np.ndarray:
  """float32 (period, period): an (H, W) array summed modulo `period`."""
  h, w = r.shape
  r = np.pad(r, ((0, -h % period), (0, -w % period)))
  return r.reshape(r.shape[0] // period, period, r.shape[1] // period, period).sum((0, 2))


def period_at(scale: float, config: WatermarkConfig) -> int:
  return int(round(config.period * scale))


def min_readable_side(config: WatermarkConfig) -> int:
  """Pixels: a frame with a side shorter than the mark's tile at the smallest candidate scale
  holds only part of the tile, so some channel bits have no carrier there and the mark cannot
  be read, whatever was done to the frame."""
  return min(period_at(s, config) for s in config.scales)


@functools.lru_cache(maxsize=16)
def templates_at(config: WatermarkConfig, period: int) -> np.ndarray:
  """complex (K, p, p): FFTs of the carriers resampled to `period`, pre-filtered.

  The resampling keeps the low `period` frequencies of each tile (Fourier crop) and
  moves the tile by 0.5 * s - 0.5 pixels (s = period / marked period): a centre-aligned
  resize by s (ffmpeg's, PIL's) maps pixel x to s * (x + 0.5) - 0.5. The pre-filter is
  the detector's (minus a Gaussian blur of `blur_sigma` pixels at scale 1).
  """
  t = carrier(config)[3]
  p = config.period
  spec = np.fft.fftshift(np.fft.fft2(t), axes=(1, 2))
  lo = (p - period) // 2
  spec = np.fft.ifftshift(spec[:, lo:lo + period, lo:lo + period], axes=(1, 2))
  small = np.real(np.fft.ifft2(spec))
  small = small - periodic_blur(small, config.blur_sigma * period / p)
  offset = 0.5 * period / p - 0.5
  freq = np.fft.fftfreq(period)
  phase = np.exp(-2j * np.pi * (freq[:, None] + freq[None, :]) * offset)
  return (np.fft.fft2(small) * phase[None]).astype(np.complex64)


def soft_bits(folded: np.ndarray, config: WatermarkConfig):
  """-> (soft (M, K), shifts [(dy, dx)] * M) at the M = `shift_candidates` circular
  shifts with the most mark energy, best first; with `origin_candidate` (0, 0) is added
  last when it is not among them (an uncropped, possibly resized frame's shift, whose
  peak H.264 may have flattened), so M is `shift_candidates` or one more.

  soft[m, k] is bit k's correlation at shift m divided by its standard deviation over
  all shifts (the picture's own correlation with the carrier sets that spread), so on
  an unmarked input the soft bits are roughly standard normal.
  """
  templates = templates_at(config, folded.shape[0])
  p = folded.shape[0]
  spectrum = np.fft.fft2(folded).astype(np.complex64)
  cross = spectrum[None] * np.conj(templates)  # (K, p, p)
  # The shift is searched on the whitened fold: the picture's residual is concentrated
  # in few frequencies, which would otherwise give spurious peaks on small frames.
  white = np.fft.irfft2((cross / _magnitude(spectrum))[..., :p // 2 + 1], s=(p, p))
  white /= white.std(axis=(1, 2), keepdims=True) + 1e-9
  score = (white ** 2).sum(0)
  best = np.argsort(score, axis=None)[::-1][:config.shift_candidates]
  if config.origin_candidate and 0 not in best:
    best = np.append(best, 0)
  dy, dx = np.unravel_index(best, score.shape)
  corr = np.fft.irfft2(cross[..., :p // 2 + 1], s=(p, p))[:, dy, dx].T
  return corr / (_spread(cross) + 1e-9), [(int(y), int(x)) for y, x in zip(dy, dx)]


def _spread(cross: np.ndarray) -> np.ndarray:
  """float (K,): the standard deviation over all circular shifts of each correlation
  given its (K, p, p) spectrum (Parseval)."""
  n = cross.shape[-1] * cross.shape[-2]
  power = np.sum(np.abs(cross) ** 2, axis=(1, 2)) / n ** 2
  return np.sqrt(np.maximum(power - (np.real(cross[:, 0, 0]) / n) ** 2, 0.0))


def _magnitude(spectrum: np.ndarray, width: int = 5) -> np.ndarray:
  """float (p, p): the magnitude of a 2-D spectrum averaged over `width` x `width`
  neighbouring frequencies (circularly), plus 1e-6; dividing by it whitens."""
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  return ndimage.uniform_filter(np.abs(spectrum), width, mode="wrap") + 1e-6


def decide(folds, config: WatermarkConfig) -> Detection:
  """Best detection over the candidate scales and shifts, given (scale, fold) pairs: the
  first whose decoded message matches its CRC, else the scale with the most reliable
  soft bits at its best shift."""
  best = None
  whitening = carrier(config)[2]
  for scale, folded in folds:
    soft, shifts = soft_bits(folded, config)
    decoded = wcode.decode(soft, whitening)
    hit = next((i for i, (payload, _) in enumerate(decoded) if payload is not None), 0)
    payload, bits = decoded[hit]
    raw = (soft[hit] > 0).astype(np.uint8) ^ whitening
    det = Detection(payload is not None, payload, bits, raw, float(np.mean(np.abs(soft[hit]))),
                    scale, shifts[hit], false_positive_rate(config))
    if best is None or (det.found, det.z) > (best.found, best.z):
      best = det
    if det.found:
      break
  return best


def _as_batch(frames) -> np.ndarray:
  frames = np.asarray(frames)
  return frames[None] if frames.ndim == 3 else frames


def detect_frames(frames: np.ndarray,
                  config: WatermarkConfig = WatermarkConfig()) -> list:
  """-> one `Detection` per uint8 frame of (N, H, W, 3) (or one (H, W, 3) image)."""
  out = []
  for f in _as_batch(frames):
    out.append(decide(((s, fold(residual(f, s, config), period_at(s, config)))
                        for s in config.scales), config))
  return out


def detect_clip(frames: np.ndarray,
                config: WatermarkConfig = WatermarkConfig()) -> Detection:
  """One `Detection` for a clip of uint8 frames (N, H, W, 3): folds summed over frames.

  The sum adds the mark coherently and the changing parts of the picture
  incoherently, so a clip decodes where single frames may not; the false-positive
  bound is the same as for one frame.
  """
  frames = _as_batch(frames)
  if not len(frames):  # pylint: disable=g-explicit-length-test
    raise ValueError("no frames")
  totals = {s: 0.0 for s in config.scales}
  for f in frames:
    for s in config.scales:
      totals[s] = totals[s] + fold(residual(f, s, config), period_at(s, config))
  return decide(totals.items(), config)
