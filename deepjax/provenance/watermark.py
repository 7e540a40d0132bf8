"""Invisible spread-spectrum watermark on luminance: 32-bit payload, CRC-32 checked.

Design (measured against the alternatives by `scripts/watermark_robustness.py`):
- The 32-bit payload and its CRC-32 form a 64-bit codeword, XOR-ed with a key-derived
  whitening sequence. A fixed key draws a `chips x chips` grid of pseudo-random +-1
  signs and assigns every chip to one codeword bit (equal counts, random places).
  One chip is `chip_px` pixels square, so the mark is a periodic tile of
  `period = chips * chip_px` pixels, smoothed by a periodic Gaussian.
- Marking (`embed`, jit-ed, batched over frames): the tile times the codeword signs is
  tiled over the frame, weighted by local luminance activity (more where the picture is
  busy) and added equally to R, G and B (a change of luminance only), with a fixed RMS
  (`strength`, in 0..255 levels) per frame.
- Detection (`detect_frames`): luminance minus its blur (removes most of the picture),
  summed modulo the period into one tile ("folding"), so a crop is only a circular
  shift of the tile; the shift is found by FFT cross-correlation with every bit's
  carrier (the shift that maximises the summed squared correlations). A rescaled
  frame is resampled back for each candidate scale in `scales`. Soft bits are decoded
  with Chase decoding: the codeword is accepted when its CRC-32 matches after flipping
  any subset of the `chase_bits` least reliable bits.
- False positives: on an unmarked frame the 64 decoded bits are random, so one trial
  matches the CRC with probability 2**-32. A frame is tried at `len(scales)` scales
  and `2**chase_bits` flip patterns: the per-frame false-positive rate is at most
  `false_positive_rate(config)` = len(scales) * 2**chase_bits * 2**-32 (about 1.8e-7 with
  the defaults). A clip decision (folds summed over all frames) makes the same number
  of trials, so it has the same bound per clip.

Frames are uint8 (N, H, W, 3) RGB; payloads are Python ints in [0, 2**32).
"""
import dataclasses
import functools
import itertools
import zlib
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

__all__ = ["WatermarkConfig", "Detection", "embed", "detect_frames", "detect_clip",
           "false_positive_rate", "codeword", "PAYLOAD_BITS"]

PAYLOAD_BITS = 32
_CODE_BITS = 64  # payload + CRC-32
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclasses.dataclass(frozen=True)
class WatermarkConfig:
  """The mark's parameters; marking and detection must use the same ones."""
  key: int = 0x64656570  # fixed key: carriers, chip places and whitening derive from it
  chips: int = 24  # the tile is chips x chips chips
  chip_px: int = 6  # pixels per chip side; period = chips * chip_px
  smooth: float = 1.5  # periodic Gaussian sigma (pixels) applied to the chip tile
  strength: float = 2.4  # RMS luminance change per frame, in 0..255 levels
  activity_power: float = 0.0  # weight = local_std ** power (0: uniform strength)
  clip_residual: float = 1.5  # detector clips the residual at this many robust stds (0: off)
  blur_sigma: float = 4.0  # detector's pre-filter: luminance minus Gaussian(blur_sigma)
  scales: tuple = (1.0, 0.5, 0.75)  # candidate (current size / marked size) at detection
  chase_bits: int = 8  # least reliable bits tried flipped at detection

  @property
  def period(self) -> int:
    return self.chips * self.chip_px


@dataclasses.dataclass
class Detection:
  """What `detect_frames` / `detect_clip` find.

  found: the CRC-32 matched (payload is then the payload); payload: int or None;
  bits: the 64 hard-decided codeword bits (0/1, de-whitened) of the best trial;
  z: mean |soft bit| in units of its null standard deviation (bit reliability; about
  0.8 on unmarked frames); scale, shift: where the mark was found;
  false_positive_rate: bound on the chance that an unmarked input gives found=True.
  """
  found: bool
  payload: Optional[int]
  bits: np.ndarray
  z: float
  scale: float
  shift: tuple
  false_positive_rate: float


def false_positive_rate(config: WatermarkConfig = WatermarkConfig()) -> float:
  """Per-decision bound: trials (scales x Chase patterns) times 2**-32."""
  return len(config.scales) * 2.0 ** config.chase_bits * 2.0 ** -32


# ----------------------------------------------------------------------------- carrier


@functools.lru_cache(maxsize=8)
def _carrier(config: WatermarkConfig):
  """-> (assign (C,C) int, signs (C,C) +-1, whitening (64,) 0/1, templates (64,P,P) f32).

  templates[k] is bit k's smoothed carrier tile; sum_k c_k * templates[k] is the mark
  tile for codeword signs c (+-1), scaled to unit RMS for random c.
  """
  rng = np.random.default_rng(config.key)
  c = config.chips
  assign = rng.permutation(np.arange(c * c) % _CODE_BITS).reshape(c, c)
  signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(c, c))
  whitening = rng.integers(0, 2, _CODE_BITS).astype(np.uint8)
  p = config.period
  onehot = (assign[None] == np.arange(_CODE_BITS)[:, None, None]) * signs[None]
  tiles = np.kron(onehot, np.ones((config.chip_px, config.chip_px), np.float32))
  tiles = _periodic_blur(tiles, config.smooth)
  total = tiles.sum(0)  # any +-1 codeword has the same RMS as this (disjoint chips)
  tiles /= np.sqrt(np.mean(total ** 2))
  return assign, signs, whitening, tiles.astype(np.float32).reshape(_CODE_BITS, p, p)


def _periodic_blur(x: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian blur of the last two (periodic) axes via FFT."""
  if sigma <= 0:
    return x
  h, w = x.shape[-2:]
  fy = np.fft.fftfreq(h)[:, None]
  fx = np.fft.fftfreq(w)[None, :]
  kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
  return np.real(np.fft.ifft2(np.fft.fft2(x) * kernel)).astype(np.float32)


def codeword(payload: int, config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """-> (64,) float32 +-1: payload bits, CRC-32 bits, XOR whitening."""
  if not 0 <= int(payload) < 2 ** PAYLOAD_BITS:
    raise ValueError(f"payload must fit in {PAYLOAD_BITS} bits, got {payload}")
  bits = np.concatenate([_bits_of(int(payload)),
                         _bits_of(zlib.crc32(int(payload).to_bytes(4, "big")))])
  bits = bits ^ _carrier(config)[2]
  return (2.0 * bits - 1.0).astype(np.float32)


def _bits_of(value: int) -> np.ndarray:
  return np.array([(value >> (31 - i)) & 1 for i in range(32)], np.uint8)


def _int_of(bits: np.ndarray) -> int:
  return int(sum(int(b) << (31 - i) for i, b in enumerate(bits)))


def _crc_ok(bits: np.ndarray) -> bool:
  return zlib.crc32(_int_of(bits[:32]).to_bytes(4, "big")) == _int_of(bits[32:])


# ----------------------------------------------------------------------------- marking


def mark_tile(payload: int, config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """-> float32 (P, P): the unit-RMS mark tile of `payload`."""
  return np.tensordot(codeword(payload, config), _carrier(config)[3], axes=1)


@functools.partial(jax.jit, static_argnames=("strength", "power"))
def _embed(frames_NxHxWx3, tile_PxP, strength, power):
  x = frames_NxHxWx3.astype(jnp.float32)
  n, h, w, _ = x.shape
  p = tile_PxP.shape[0]
  pattern = jnp.tile(tile_PxP, (-(-h // p), -(-w // p)))[:h, :w][None]
  y = x @ jnp.asarray(_LUMA)
  win = (1, 7, 7)
  mean = jax.lax.reduce_window(y, 0.0, jax.lax.add, win, (1, 1, 1), "SAME") / 49.0
  sq = jax.lax.reduce_window(y * y, 0.0, jax.lax.add, win, (1, 1, 1), "SAME") / 49.0
  activity = jnp.sqrt(jnp.maximum(sq - mean * mean, 0.0)) + 1.0
  weight = activity ** power
  weight = weight / jnp.sqrt(jnp.mean(weight * weight, axis=(1, 2), keepdims=True))
  delta = weight * pattern
  rms = jnp.sqrt(jnp.mean(delta * delta, axis=(1, 2), keepdims=True)) + 1e-6
  delta = delta * (strength / rms)
  out = jnp.clip(jnp.round(x + delta[..., None]), 0, 255)
  return out.astype(jnp.uint8)


def embed(frames: np.ndarray, payload: int,
          config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """Marks uint8 frames (N, H, W, 3) (or one (H, W, 3) image) with `payload`.

  Returns the marked uint8 array of the same shape. Jit-compiled once per frame shape.
  """
  frames = np.asarray(frames)
  single = frames.ndim == 3
  if single:
    frames = frames[None]
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be uint8 (N,H,W,3), got {frames.dtype} {frames.shape}")
  out = np.asarray(_embed(frames, jnp.asarray(mark_tile(payload, config)),
                          float(config.strength), float(config.activity_power)))
  return out[0] if single else out


# ----------------------------------------------------------------------------- detection


def _luma_residual(frame: np.ndarray, scale: float, sigma: float, clip: float) -> np.ndarray:
  """Luminance of uint8 (H, W, 3), resampled by 1/scale, minus its Gaussian blur."""
  y = frame.astype(np.float32) @ _LUMA
  if scale != 1.0:
    h, w = y.shape
    size = (int(round(w / scale)), int(round(h / scale)))
    y = np.asarray(Image.fromarray(y, mode="F").resize(size, Image.BILINEAR))
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  r = y - ndimage.gaussian_filter(y, sigma, mode="mirror")
  if clip:
    t = clip * 1.4826 * np.median(np.abs(r)) + 1e-3
    r = np.clip(r, -t, t)
  return r


def fold(frame: np.ndarray, scale: float,
         config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """-> float32 (P, P): frame's pre-filtered luminance summed modulo the period."""
  r = _luma_residual(frame, scale, config.blur_sigma, config.clip_residual)
  p = config.period
  h, w = r.shape
  r = np.pad(r, ((0, -h % p), (0, -w % p)))
  return r.reshape(r.shape[0] // p, p, r.shape[1] // p, p).sum((0, 2)), float(r.var() * h * w)


def _soft_bits(folded: np.ndarray, energy: float, config: WatermarkConfig):
  """-> (soft (64,) in null-std units, shift (dy, dx), score) at the best circular shift."""
  templates = _filtered_templates(config)
  spec = np.fft.fft2(folded)
  corr = np.real(np.fft.ifft2(spec[None] * np.conj(templates[0])))  # (64, P, P)
  score = (corr ** 2).sum(0)
  dy, dx = np.unravel_index(np.argmax(score), score.shape)
  p = config.period
  std = np.sqrt(energy / (p * p) * templates[1])  # null std of each bit's correlation
  return corr[:, dy, dx] / std, (int(dy), int(dx))


@functools.lru_cache(maxsize=8)
def _filtered_templates(config: WatermarkConfig):
  """FFTs of each bit's carrier after the detector's pre-filter, and their energies."""
  t = _carrier(config)[3]
  highpass = t - _periodic_blur(t, config.blur_sigma)
  return np.fft.fft2(highpass), (highpass ** 2).sum((1, 2))


def _chase(soft: np.ndarray, config: WatermarkConfig):
  """-> (payload or None, de-whitened bits) by flipping subsets of the weakest bits."""
  whitening = _carrier(config)[2]
  hard = (soft > 0).astype(np.uint8) ^ whitening
  weakest = np.argsort(np.abs(soft))[:config.chase_bits]
  for r in range(config.chase_bits + 1):
    for flip in itertools.combinations(weakest, r):
      bits = hard.copy()
      bits[list(flip)] ^= 1
      if _crc_ok(bits):
        return _int_of(bits[:32]), bits
  return None, hard


def _decide(folds_energies, config: WatermarkConfig) -> Detection:
  """Best detection over the candidate scales, given (scale, fold, energy) triples."""
  best = None
  for scale, folded, energy in folds_energies:
    soft, shift = _soft_bits(folded, energy, config)
    payload, bits = _chase(soft, config)
    z = float(np.mean(np.abs(soft)))
    det = Detection(payload is not None, payload, bits, z, scale, shift,
                    false_positive_rate(config))
    if best is None or (det.found, det.z) > (best.found, best.z):
      best = det
    if det.found:
      break
  return best


def detect_frames(frames: np.ndarray,
                  config: WatermarkConfig = WatermarkConfig()) -> list:
  """-> one `Detection` per uint8 frame of (N, H, W, 3) (or one (H, W, 3) image)."""
  frames = np.asarray(frames)
  frames = frames[None] if frames.ndim == 3 else frames
  return [_decide(((s,) + fold(f, s, config) for s in config.scales), config)
          for f in frames]


def detect_clip(frames: Sequence[np.ndarray],
                config: WatermarkConfig = WatermarkConfig()) -> Detection:
  """One `Detection` for a whole clip: folds summed over its frames (same size) per scale.

  The sum adds the mark coherently and the picture incoherently, so a clip decodes
  where single frames do not; the false-positive bound is the same as for one frame.
  """
  frames = list(frames)
  if not frames:
    raise ValueError("no frames")

  def summed(scale):
    total, energy = 0.0, 0.0
    for f in frames:
      folded, e = fold(f, scale, config)
      total, energy = total + folded, energy + e
    return scale, total, energy
  return _decide((summed(s) for s in config.scales), config)
