"""Invisible spread-spectrum watermark on luminance: 32-bit payload, CRC-32 checked.

Design (measured against the alternatives by `scripts/watermark_robustness.py`):
- The 32-bit payload and its CRC-32 form a 64-bit codeword, XOR-ed with a key-derived
  whitening sequence. A fixed key draws a `chips x chips` grid of pseudo-random +-1
  signs and assigns every chip to one codeword bit (equal counts, random places).
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
  4x4 block moments, interpolated linearly): with the default -1 it is stronger
  in flat areas, where H.264 keeps it and the detector's pre-filter sees little picture;
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
  correlates with the carriers resampled to that period. Soft bits are decoded with
  Chase decoding (`watermark_code`): the codeword is accepted when its CRC-32 matches
  after flipping any subset of the `chase_bits` least reliable bits.
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
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.provenance import watermark_code as wcode
from deepjax.provenance import watermark_ops as wops

__all__ = ["WatermarkConfig", "Detection", "embed", "detect_frames", "detect_clip",
           "false_positive_rate", "codeword", "PAYLOAD_BITS"]

PAYLOAD_BITS = wcode.PAYLOAD_BITS
_CODE_BITS = wcode.CODE_BITS  # payload + CRC-32
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
  activity_power: float = -1.0  # mark weight ~ (local luminance std + 1) ** power
  cancel: float = 1.0  # fraction of the picture's own correlation with each carrier removed
  clip_residual: float = 1.5  # detector clips the residual at this many robust stds (0: off)
  weight_power: float = 2.0  # detector weighs the residual by (local RMS + offset) ** -power
  weight_offset: float = 2.0  # ... (0..255 levels; power 0: unweighted)
  weight_sigma: float = 4.0  # ... the local RMS over a Gaussian window of this sigma (pixels)
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
  bits: the 64 codeword bits (0/1, de-whitened) after Chase decoding; raw_bits: the
  same before it (hard decisions of the soft bits);
  z: mean |soft bit| in units of its spread over all shifts (bit reliability; about
  0.8-1.5 on unmarked frames); scale, shift: where the mark was found;
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
  bits = wcode.message_bits(payload) ^ _carrier(config)[2]
  return (2.0 * bits - 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- marking


@functools.lru_cache(maxsize=8)
def _highpass_carrier(config: WatermarkConfig) -> np.ndarray:
  """float32 (64, P, P): each bit's carrier as the detector sees it at scale 1."""
  t = _carrier(config)[3]
  return (t - _periodic_blur(t, config.blur_sigma)).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("strength", "cancel", "clip", "power", "sigma",
                                             "detector_weight", "blur_block", "activity_block"))
def _embed(frames_NxHxWx3, code_K, carriers_KxPxP, highpass_KxPxP, strength, cancel, clip,
           power, sigma, detector_weight=(0.0, 0.0), blur_block=_BLUR_BLOCK,
           activity_block=_ACTIVITY_BLOCK):
  """Adds the mark to luminance with host-interference cancellation (see `embed`).

  The picture's residual (for the cancellation) and its local std (for the mark's
  weighting, constant per block, and for the detector's, `detector_weight` = (power,
  offset), interpolated linearly between block centres) are computed from f x f block
  means, f = blur_block / activity_block (the period must be a multiple of
  activity_block). The frame
  sized products of the periodic mark are reduced to tile sized ones by folding: for
  tiles A, B, mean(v * tile(A) * tile(B)) = sum(fold(v) * A * B) / (H * W).
  """
  x = frames_NxHxWx3.astype(jnp.float32)
  _, h, w, _ = x.shape
  p = carriers_KxPxP.shape[-1]
  y = sum(float(c) * x[..., i] for i, c in enumerate(_LUMA))  # not a matmul: slow on CPU
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
    both_NxPxP = wops.repeat_blocks(wops.fold_batch(weight_c * w_det_c, p // f), f)
    gain_NxK = jnp.einsum("npq,kpq->nk", both_NxPxP, highpass_KxPxP ** 2)
  else:
    count_PxP = wops.fold_batch(jnp.ones((1, h, w)), p)[0]
    gain_NxK = jnp.einsum("pq,kpq->k", count_PxP, highpass_KxPxP ** 2)[None]
  host_NxK = jnp.einsum("npq,kpq->nk", wops.fold_batch(r, p), highpass_KxPxP)
  mark_PxP = jnp.einsum("k,kpq->pq", code_K, carriers_KxPxP)[None]
  undo_NxPxP = jnp.einsum("nk,kpq->npq", cancel * host_NxK / gain_NxK, carriers_KxPxP)
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
  return _embed(frames, codeword(payload, config), _carrier(config)[3],
                _highpass_carrier(config), float(config.strength), float(config.cancel),
                float(config.clip_residual), float(config.activity_power),
                float(config.blur_sigma), _detector_weight(config))


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
  """complex (64, p, p): FFTs of the carriers resampled to `period`, pre-filtered.

  The resampling keeps the low `period` frequencies of each tile (Fourier crop); the
  pre-filter is the detector's (minus a Gaussian blur of `blur_sigma` pixels at scale 1).
  """
  t = _carrier(config)[3]
  p = config.period
  spec = np.fft.fftshift(np.fft.fft2(t), axes=(1, 2))
  lo = (p - period) // 2
  spec = np.fft.ifftshift(spec[:, lo:lo + period, lo:lo + period], axes=(1, 2))
  small = np.real(np.fft.ifft2(spec))
  return np.fft.fft2(small - _periodic_blur(small, config.blur_sigma * period / p))


def _soft_bits(folded: np.ndarray, config: WatermarkConfig):
  """-> (soft (64,), shift (dy, dx)) at the circular shift with the most mark energy.

  soft[k] is bit k's correlation divided by its standard deviation over all shifts
  (the picture's own correlation with the carrier sets that spread), so on an unmarked
  input the soft bits are roughly standard normal.
  """
  templates = _templates_at(config, folded.shape[0])
  spectrum = np.fft.fft2(folded)
  corr = np.real(np.fft.ifft2(spectrum[None] * np.conj(templates)))
  corr /= corr.std(axis=(1, 2), keepdims=True) + 1e-9
  # The shift is searched on the whitened fold: the picture's residual is concentrated
  # in few frequencies, which would otherwise give spurious peaks on small frames.
  white = np.real(np.fft.ifft2(_whiten(spectrum)[None] * np.conj(templates)))
  white /= white.std(axis=(1, 2), keepdims=True) + 1e-9
  score = (white ** 2).sum(0)
  dy, dx = np.unravel_index(np.argmax(score), score.shape)
  return corr[:, dy, dx], (int(dy), int(dx))


def _whiten(spectrum: np.ndarray, width: int = 5) -> np.ndarray:
  """complex (p, p): a 2-D spectrum divided by its magnitude averaged over `width` x
  `width` neighbouring frequencies (circularly)."""
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  magnitude = ndimage.uniform_filter(np.abs(spectrum), width, mode="wrap")
  return spectrum / (magnitude + 1e-6)


def _chase(soft: np.ndarray, config: WatermarkConfig):
  """-> (payload or None, de-whitened bits): `watermark_code.chase_decode` with this
  config's whitening and `chase_bits`."""
  return wcode.chase_decode(soft, _carrier(config)[2], config.chase_bits)


def _decide(folds, config: WatermarkConfig) -> Detection:
  """Best detection over the candidate scales, given (scale, fold) pairs."""
  best = None
  for scale, folded in folds:
    soft, shift = _soft_bits(folded, config)
    payload, bits = _chase(soft, config)
    raw = (soft > 0).astype(np.uint8) ^ _carrier(config)[2]
    det = Detection(payload is not None, payload, bits, raw, float(np.mean(np.abs(soft))),
                    scale, shift, false_positive_rate(config))
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
