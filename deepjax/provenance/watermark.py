"""Invisible spread-spectrum watermark on luminance: 32-bit payload, CRC-32 checked.

Design (measured against the alternatives by `scripts/watermark_robustness.py`):
- The 32-bit payload and its CRC-32 form a 64-bit message, encoded by a rate-1/3
  convolutional code into 192 channel bits (`watermark_code`), XOR-ed with a key-derived
  whitening sequence. A fixed key draws a `chips x chips` grid of pseudo-random +-1
  signs and assigns every chip to one channel bit (equal counts, random places).
  One chip is `chip_px` pixels square, so the mark is a periodic tile of
  `period = chips * chip_px` pixels, smoothed by a periodic Gaussian.
- Marking (`embed`, one jit-ed call for a batch of frames): the tile times the codeword signs is
  tiled over the frame and added equally to R, G and B (a change of luminance only).
  Before that, the picture's own correlation with each bit's carrier (as the detector
  will measure it, its weighting included) is subtracted from that bit's amplitude
  (host-interference cancellation, `cancel`), so the picture does not mask the mark; that
  correlation is computed from the luminance minus a blur taken on 4x4 block means, and
  the detector's weighting from the local luminance std of 4x4 blocks. The mark is weighted
  by (local luminance std + 1) ** `activity_power` (the std over about 8x8 pixels, from
  4x4 block moments, constant per block): with the default -0.5 it is stronger in
  flat areas, where the detector's pre-filter sees little picture, but not so much
  stronger that H.264 quantises it away there (-1 and -2 were worse after compression);
  its RMS over the frame is `strength` (0..255 levels; 2.4 gives PSNR about 40.5 dB).
- Detection (`detect_frames`): luminance minus its blur (removes most of the picture),
  clipped at `clip_residual` robust standard deviations (edges), weighted by
  (local RMS of that residual + `weight_offset`) ** -`weight_power` (textured areas, where
  the picture outweighs the mark, count little; it keeps resized, cropped and re-encoded
  frames readable where cancellation no longer holds), summed modulo the
  period into one tile ("folding"), so a crop is only a circular shift of the tile;
  the shift is found by FFT cross-correlation of the spectrally whitened fold with every
  bit's carrier (the shift that maximises the summed squared correlations); the soft
  bits are the unwhitened correlations at that shift (what marking cancelled against).
  For a rescaled frame, each candidate
  scale s in `scales` folds at period round(s * period) with the blur scaled by s, and
  correlates with the carriers resampled to that period and moved by the half-pixel
  offset of a centre-aligned resize (0.5 * s - 0.5 pixels). The soft bits at the
  `shift_candidates` best shifts are Viterbi-decoded (`watermark_code`); a shift whose
  decoded message matches its CRC-32 gives the payload.
- False positives: on an unmarked frame the decoded message is random, so one trial
  matches the CRC with probability 2**-32. A frame is tried at `len(scales)` scales and
  `shift_candidates` shifts each: the per-frame false-positive rate is at most
  `false_positive_rate(config)` = len(scales) * shift_candidates * 2**-32 (about 5.6e-9
  with the defaults). A clip decision (folds summed over all frames) makes the same
  number of trials, so it has the same bound per clip.

Frames are uint8 (N, H, W, 3) RGB; payloads are Python ints in [0, 2**32).
"""
import dataclasses
import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.provenance import watermark_code as wcode
from deepjax.provenance import watermark_ops as wops

__all__ = ["WatermarkConfig", "Detection", "embed", "detect_frames", "detect_clip",
           "false_positive_rate", "codeword", "PAYLOAD_BITS"]

PAYLOAD_BITS = wcode.PAYLOAD_BITS
_CODE_BITS = wcode.CODE_BITS  # channel bits: the coded payload + CRC-32
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_BLUR_BLOCK = 4  # marking computes the picture's blurred luminance from 4x4 block means
_ACTIVITY_BLOCK = 4  # ... and its local activity from 4x4 block moments


@dataclasses.dataclass(frozen=True)
class WatermarkConfig:
  """The mark's parameters; marking and detection must use the same ones."""
  key: int = 0x64656570  # fixed key: carriers, chip places and whitening derive from it
  chips: int = 24  # the tile is chips x chips chips
  chip_px: int = 6  # pixels per chip side; period = chips * chip_px
  smooth: float = 1.5  # periodic Gaussian sigma (pixels) applied to the chip tile
  strength: float = 2.4  # RMS luminance change per frame, in 0..255 levels
  activity_power: float = -0.5  # mark weight ~ (local luminance std + 1) ** power
  cancel: float = 1.0  # fraction of the picture's own correlation with each carrier removed
  clip_residual: float = 1.5  # detector clips the residual at this many robust stds (0: off)
  weight_power: float = 2.0  # detector weighs the residual by (local RMS + offset) ** -power
  weight_offset: float = 2.0  # ... (0..255 levels; power 0: unweighted)
  weight_sigma: float = 4.0  # ... the local RMS over a Gaussian window of this sigma (pixels)
  blur_sigma: float = 4.0  # detector's pre-filter: luminance minus Gaussian(blur_sigma)
  scales: tuple = (1.0, 0.5, 0.75)  # candidate (current size / marked size) at detection
  shift_candidates: int = 8  # best shifts per scale decoded at detection

  @property
  def period(self) -> int:
    return self.chips * self.chip_px


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


def false_positive_rate(config: WatermarkConfig = WatermarkConfig()) -> float:
  """Per-decision bound: trials (scales x shift candidates) times 2**-32."""
  return len(config.scales) * config.shift_candidates * 2.0 ** -32


# ----------------------------------------------------------------------------- carrier


@functools.lru_cache(maxsize=8)
def _carrier(config: WatermarkConfig):
  """-> (assign (C,C) int, signs (C,C) +-1, whitening (K,) 0/1, templates (K,P,P) f32),
  K = 192 channel bits.

  templates[k] is bit k's smoothed carrier tile; sum_k c_k * templates[k] is the mark
  tile for channel signs c (+-1), scaled to unit RMS for random c.
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
  """-> (192,) float32 +-1: the channel bits of payload and CRC-32, XOR whitening."""
  bits = wcode.encode(wcode.message_bits(payload)) ^ _carrier(config)[2]
  return (2.0 * bits - 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- marking


@functools.lru_cache(maxsize=8)
def _highpass_carrier(config: WatermarkConfig) -> np.ndarray:
  """float32 (K, P, P): each bit's carrier as the detector sees it at scale 1."""
  t = _carrier(config)[3]
  return (t - _periodic_blur(t, config.blur_sigma)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _chip_constants(config: WatermarkConfig, block: int = _ACTIVITY_BLOCK):
  """The mark's linear pieces in the chip domain, for `_embed` (all float32 / complex64).

  -> (carrier_hat (P, P//2+1): rfft2 of the carrier of one chip at (0, 0) (bit k's carrier
  is the sum of its chips' copies, shifted by chip_px per chip and signed);
  highpass_hat: the same as the detector sees it at scale 1;
  chip_to_bit (C*C, K): signs[c] where chip c belongs to bit k, else 0;
  energy_KxBxB: each bit's squared highpass carrier summed over `block` x `block` blocks).
  """
  assign, signs, _, tiles = _carrier(config)
  c, px, p = config.chips, config.chip_px, config.period
  one = np.zeros((c, c), np.float32)
  one[0, 0] = 1.0
  chip = _periodic_blur(np.kron(one, np.ones((px, px), np.float32))[None], config.smooth)[0]
  chip /= np.sqrt(np.mean(_periodic_blur(  # the normalisation of `_carrier`
      np.kron(signs, np.ones((px, px), np.float32))[None], config.smooth) ** 2))
  highpass = chip - _periodic_blur(chip[None], config.blur_sigma)[0]
  chip_to_bit = (assign.reshape(-1, 1) == np.arange(_CODE_BITS)[None]) * signs.reshape(-1, 1)
  hp_tiles = _highpass_carrier(config)
  energy = (hp_tiles ** 2).reshape(_CODE_BITS, p // block, block, p // block, block).sum((2, 4))
  return (np.fft.rfft2(chip).astype(np.complex64), np.fft.rfft2(highpass).astype(np.complex64),
          chip_to_bit.astype(np.float32), energy.astype(np.float32))


@functools.partial(jax.jit, static_argnames=("strength", "cancel", "clip", "power", "sigma",
                                             "detector_weight", "chip_px", "blur_block",
                                             "activity_block"))
def _embed(frames_NxHxWx3, code_K, constants, plain_gain_K, strength, cancel, clip, power,
           sigma, detector_weight=(0.0, 0.0), chip_px=6, blur_block=_BLUR_BLOCK,
           activity_block=_ACTIVITY_BLOCK):
  """Adds the mark to luminance with host-interference cancellation (see `embed`).

  `constants`: `_chip_constants`; `plain_gain_K`: each bit's gain for the unweighted
  detector (`detector_weight` power 0), else unused. The picture's residual (for the
  cancellation) and its local std (for the mark's weighting, constant per block, and for
  the detector's, `detector_weight` = (power, offset), interpolated linearly between block
  centres) are computed from f x f block means, f = blur_block / activity_block (the period
  must be a multiple of activity_block). The frame sized products of the periodic mark
  are reduced to tile sized ones by folding: for tiles A, B, mean(v * tile(A) * tile(B)) =
  sum(fold(v) * A * B) / (H * W); products with the carriers are taken per chip (each
  bit's carrier is a sum of shifted copies of one chip's), by FFT on the tile.
  """
  carrier_hat, highpass_hat, chip_to_bit, energy_KxBxB = constants
  x = frames_NxHxWx3.astype(jnp.float32)
  n, h, w, _ = x.shape
  p = energy_KxBxB.shape[-1] * activity_block
  c = p // chip_px
  y = sum(float(k) * x[..., i] for i, k in enumerate(_LUMA))  # not a matmul: slow on CPU
  r = y - wops.coarse_blur(y, sigma, blur_block)
  w_power, w_offset = detector_weight
  f = activity_block
  std_c = wops.local_std(y, f)
  if w_power:
    w_det_c = (std_c + w_offset) ** -w_power
  if clip:
    sub = jnp.abs(r[:, ::4, ::4]).reshape(r.shape[0], -1)
    t = clip * 1.4826 * wops.robust_scale(sub) + 1e-3
    r = jnp.clip(r, -t, t)
  # Weight (local std + 1) ** power with mean 1 (power < 0: more mark in flat areas).
  # The weight is constant over each f x f block, so its folds are taken on the blocks.
  weight_c = wops.std_weight(std_c, power)
  weight = wops.repeat_blocks(weight_c, f)[:, :h, :w]
  # The detector's correlation of bit k with the picture itself, and with a unit mark
  # (the mark reaches the detector times the mark's weight and the detector's).
  if w_power:  # the detector's weight is smooth (linear between block centres) on the
    # picture; for the gain, both weights are taken per block
    r = r * wops.upsample(w_det_c, f, h, w)
    both_NxBxB = wops.fold_batch(weight_c * w_det_c, p // f)
    gain_NxK = jnp.einsum("nab,kab->nk", both_NxBxB, energy_KxBxB)
  else:
    gain_NxK = plain_gain_K[None]
  host_chips = wops.chip_correlate(wops.fold_batch(r, p), highpass_hat, chip_px)
  host_NxK = host_chips.reshape(n, c * c) @ chip_to_bit
  code_chips = (chip_to_bit @ code_K).reshape(1, c, c)
  mark_PxP = wops.chip_synthesise(code_chips, carrier_hat, chip_px)
  undo_chips = ((cancel * host_NxK / gain_NxK) @ chip_to_bit.T).reshape(n, c, c)
  undo_NxPxP = wops.chip_synthesise(undo_chips, carrier_hat, chip_px)
  w2_NxPxP = wops.repeat_blocks(wops.fold_batch(weight_c * weight_c, p // f), f)
  w2_NxPxP = w2_NxPxP / float(h * w)
  # delta = weight * tile(alpha * mark - undo) with RMS `strength`: a quadratic in alpha.
  mm = jnp.sum(w2_NxPxP * mark_PxP * mark_PxP, axis=(1, 2), keepdims=True)
  mu = jnp.sum(w2_NxPxP * mark_PxP * undo_NxPxP, axis=(1, 2), keepdims=True)
  uu = jnp.sum(w2_NxPxP * undo_NxPxP * undo_NxPxP, axis=(1, 2), keepdims=True)
  alpha = (mu + jnp.sqrt(jnp.maximum(mu * mu - mm * (uu - strength ** 2), 0.0))) / mm
  delta = weight * wops.tile(alpha * mark_PxP - undo_NxPxP, h, w)
  out = jnp.clip(jnp.round(x + delta[..., None]), 0, 255)
  return out.astype(jnp.uint8)


def embed_async(frames_NxHxWx3: np.ndarray, payload: int,
                config: WatermarkConfig = WatermarkConfig()) -> jax.Array:
  """Dispatches the marking of uint8 frames (N, H, W, 3) and returns at once: the marked
  uint8 (N, H, W, 3) device array (reading it waits for the result). Jit-compiled once per
  frame shape."""
  frames = np.asarray(frames_NxHxWx3)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be uint8 (N,H,W,3), got {frames.dtype} {frames.shape}")
  return _embed(frames, codeword(payload, config), _chip_constants(config),
                _plain_gain(config, *frames.shape[1:3]), float(config.strength),
                float(config.cancel), float(config.clip_residual),
                float(config.activity_power), float(config.blur_sigma),
                _detector_weight(config), config.chip_px)


def _plain_gain(config: WatermarkConfig, h: int, w: int) -> np.ndarray:
  """float32 (K,): sum over an (h, w) frame of each bit's tiled highpass carrier squared
  (the unweighted detector's response to a unit mark); zeros when the detector weighs."""
  if config.weight_power:
    return np.zeros(_CODE_BITS, np.float32)
  p = config.period
  rows, cols = (np.bincount(np.arange(n) % p, minlength=p).astype(np.float32) for n in (h, w))
  return np.einsum("p,kpq,q->k", rows, _highpass_carrier(config) ** 2, cols)


def _detector_weight(config: WatermarkConfig) -> tuple:
  return float(config.weight_power), float(config.weight_offset)


def embed(frames: np.ndarray, payload: int,
          config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """Marks uint8 frames (N, H, W, 3) (or one (H, W, 3) image) with `payload`.

  Returns the marked uint8 array of the same shape. Jit-compiled once per frame shape.
  """
  frames = np.asarray(frames)
  single = frames.ndim == 3
  out = np.asarray(embed_async(frames[None] if single else frames, payload, config))
  return out[0] if single else out


# ----------------------------------------------------------------------------- detection


def residual(frame: np.ndarray, scale: float = 1.0,
             config: WatermarkConfig = WatermarkConfig()) -> np.ndarray:
  """float32 (H, W): luminance of uint8 (H, W, 3) minus its blur, clipped at outliers,
  times (its local RMS + `weight_offset`) ** -`weight_power`.

  The blur is `blur_sigma * scale` pixels (the same filter as at marking, for a frame
  rescaled by `scale`) and the RMS window `weight_sigma * scale` (marking approximates this
  weighting from its 4x4 block luminance std).
  """
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  y = frame.astype(np.float32) @ _LUMA
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


def _period(scale: float, config: WatermarkConfig) -> int:
  return int(round(config.period * scale))


@functools.lru_cache(maxsize=16)
def _templates_at(config: WatermarkConfig, period: int) -> np.ndarray:
  """complex (K, p, p): FFTs of the carriers resampled to `period`, pre-filtered.

  The resampling keeps the low `period` frequencies of each tile (Fourier crop) and
  moves the tile by 0.5 * s - 0.5 pixels (s = period / marked period): a centre-aligned
  resize by s (ffmpeg's, PIL's) maps pixel x to s * (x + 0.5) - 0.5. The pre-filter is
  the detector's (minus a Gaussian blur of `blur_sigma` pixels at scale 1).
  """
  t = _carrier(config)[3]
  p = config.period
  spec = np.fft.fftshift(np.fft.fft2(t), axes=(1, 2))
  lo = (p - period) // 2
  spec = np.fft.ifftshift(spec[:, lo:lo + period, lo:lo + period], axes=(1, 2))
  small = np.real(np.fft.ifft2(spec))
  small = small - _periodic_blur(small, config.blur_sigma * period / p)
  offset = 0.5 * period / p - 0.5
  freq = np.fft.fftfreq(period)
  phase = np.exp(-2j * np.pi * (freq[:, None] + freq[None, :]) * offset)
  return (np.fft.fft2(small) * phase[None]).astype(np.complex64)


def _soft_bits(folded: np.ndarray, config: WatermarkConfig):
  """-> (soft (M, K), shifts [(dy, dx)] * M) at the M = `shift_candidates` circular
  shifts with the most mark energy, best first.

  soft[m, k] is bit k's correlation at shift m divided by its standard deviation over
  all shifts (the picture's own correlation with the carrier sets that spread), so on
  an unmarked input the soft bits are roughly standard normal.
  """
  templates = _templates_at(config, folded.shape[0])
  p = folded.shape[0]
  spectrum = np.fft.fft2(folded).astype(np.complex64)
  cross = spectrum[None] * np.conj(templates)  # (K, p, p)
  # The shift is searched on the whitened fold: the picture's residual is concentrated
  # in few frequencies, which would otherwise give spurious peaks on small frames.
  white = np.fft.irfft2((cross / _magnitude(spectrum))[..., :p // 2 + 1], s=(p, p))
  white /= white.std(axis=(1, 2), keepdims=True) + 1e-9
  score = (white ** 2).sum(0)
  best = np.argsort(score, axis=None)[::-1][:config.shift_candidates]
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


def _decide(folds, config: WatermarkConfig) -> Detection:
  """Best detection over the candidate scales and shifts, given (scale, fold) pairs: the
  first whose decoded message matches its CRC, else the scale with the most reliable
  soft bits at its best shift."""
  best = None
  whitening = _carrier(config)[2]
  for scale, folded in folds:
    soft, shifts = _soft_bits(folded, config)
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
    out.append(_decide(((s, fold(residual(f, s, config), _period(s, config)))
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
      totals[s] = totals[s] + fold(residual(f, s, config), _period(s, config))
  return _decide(totals.items(), config)
