"""Invisible spread-spectrum watermark on luminance: 32-bit payload, CRC-32 checked.

Design (measured against the alternatives by `scripts/watermark_robustness.py`):
- The 32-bit payload and its CRC-32 form a 64-bit message, encoded by a rate-1/3
  convolutional code into 192 channel bits (`watermark_code`), XOR-ed with a key-derived
  whitening sequence. A fixed key draws a `chips x chips` grid of pseudo-random +-1
  signs and assigns every chip to one channel bit (equal counts, random places).
  One chip is `chip_px` pixels square, so the mark is a periodic tile of
  `period = chips * chip_px` pixels, smoothed by a periodic Gaussian.
- Marking (`embed`, two jit-ed calls for a batch of frames: `_residual`, `_mark`): the
  tile times the codeword signs is tiled over the frame and added equally to R, G and B
  (a change of luminance only).
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
- Detection (`detect_frames`, in `watermark_detect`): luminance minus its blur (removes most of the picture),
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
  `shift_candidates` best shifts, and at (0, 0), an uncropped frame's shift, when that
  is not among them (`origin_candidate`), are Viterbi-decoded (`watermark_code`); a
  shift whose decoded message matches its CRC-32 gives the payload.
- False positives: on an unmarked frame the decoded message is random, so one trial
  matches the CRC with probability 2**-32. A frame is tried at `len(scales)` scales and
  at most `shift_candidates` + 1 shifts each: the per-frame false-positive rate is at
  most `false_positive_rate(config)` = len(scales) * (shift_candidates + 1) * 2**-32
  (about 6.3e-9 with the defaults). A clip decision (folds summed over all frames) makes the same
  number of trials, so it has the same bound per clip.

Frames are uint8 (N, H, W, 3) RGB; payloads are Python ints in [0, 2**32).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.provenance import watermark_ops as wops
from deepjax.provenance.watermark_carrier import (CODE_BITS, LUMA, PAYLOAD_BITS,
                                                  WatermarkConfig, chip_carrier, codeword,
                                                  false_positive_rate, highpass_carrier,
                                                  layout, periodic_blur)
from deepjax.provenance.watermark_detect import (Detection, detect_clip, detect_frames, fold,
                                                 min_readable_side, residual)

__all__ = ["WatermarkConfig", "Detection", "embed", "embed_async", "detect_frames",
           "detect_clip", "false_positive_rate", "codeword", "residual", "fold",
           "min_readable_side", "PAYLOAD_BITS"]

_BLUR_BLOCK = 4  # marking computes the picture's blurred luminance from 4x4 block means
_ACTIVITY_BLOCK = 4  # ... and its local activity from 4x4 block moments


@functools.lru_cache(maxsize=8)
def _chip_constants(config: WatermarkConfig, block: int = _ACTIVITY_BLOCK):
  """The mark's linear pieces in the chip domain, for `_mark` (all float32 / complex64).

  -> (carrier_hat (P, P//2+1): rfft2 of the carrier of one chip at (0, 0) (bit k's carrier
  is the sum of its chips' copies, shifted by chip_px per chip and signed);
  highpass_hat: the same as the detector sees it at scale 1;
  chip_to_bit (C*C, K): signs[c] where chip c belongs to bit k, else 0;
  energy_KxBxB: each bit's squared highpass carrier summed over `block` x `block` blocks).
  """
  assign, signs, _ = layout(config)
  p = config.period
  chip = chip_carrier(config)
  highpass = chip - periodic_blur(chip[None], config.blur_sigma)[0]
  chip_to_bit = (assign.reshape(-1, 1) == np.arange(CODE_BITS)[None]) * signs.reshape(-1, 1)
  hp_tiles = highpass_carrier(config)
  energy = (hp_tiles ** 2).reshape(CODE_BITS, p // block, block, p // block, block).sum((2, 4))
  return (np.fft.rfft2(chip).astype(np.complex64), np.fft.rfft2(highpass).astype(np.complex64),
          chip_to_bit.astype(np.float32), energy.astype(np.float32))


@functools.partial(jax.jit, static_argnames=("clip", "sigma", "detector_weight",
                                             "blur_block", "activity_block"))
def _residual(frames_NxHxWx3, clip, sigma, detector_weight=(0.0, 0.0),
              blur_block=_BLUR_BLOCK, activity_block=_ACTIVITY_BLOCK):
  """The picture as the detector sees it, for the cancellation in `_mark`.

  -> (r (N, H, W) float32: luminance minus its blur (from `blur_block` block means),
  clipped at `clip` robust stds and, with `detector_weight` = (power, offset), weighted
  by (local std + offset) ** -power interpolated linearly between block centres;
  std_c (N, ceil(H/f), ceil(W/f)): the local luminance std per `activity_block` block).

  A jit of its own, so that r is written once: fused into the fold of `_mark`, XLA CPU's
  reduction materialised the upsampling weights at full size (docs/performance.md).
  """
  x = frames_NxHxWx3.astype(jnp.float32)
  _, h, w, _ = x.shape
  y = sum(float(k) * x[..., i] for i, k in enumerate(LUMA))  # not a matmul: slow on CPU
  r = y - wops.coarse_blur(y, sigma, blur_block)
  std_c = wops.local_std(y, activity_block)
  if clip:
    sub = jnp.abs(r[:, ::4, ::4]).reshape(r.shape[0], -1)
    t = clip * 1.4826 * wops.robust_scale(sub) + 1e-3
    r = jnp.clip(r, -t, t)
  w_power, w_offset = detector_weight
  if w_power:  # the detector's weight is smooth (linear between block centres)
    r = r * wops.upsample((std_c + w_offset) ** -w_power, activity_block, h, w)
  return r, std_c


@functools.partial(jax.jit, static_argnames=("strength", "cancel", "power",
                                             "detector_weight", "chip_px", "activity_block"))
def _mark(frames_NxHxWx3, r_NxHxW, std_c, code_K, constants, plain_gain_K, strength, cancel,
          power, detector_weight=(0.0, 0.0), chip_px=6, activity_block=_ACTIVITY_BLOCK):
  """Adds the mark to luminance with host-interference cancellation (see `embed`).

  `r_NxHxW`, `std_c`: `_residual` of the frames; `constants`: `_chip_constants`;
  `plain_gain_K`: each bit's gain for the unweighted detector (`detector_weight` power 0),
  else unused. The mark's weight is constant per block of `std_c` (the period must be a
  multiple of activity_block). The frame sized products of the periodic mark are reduced
  to tile sized ones by folding: for tiles A, B, mean(v * tile(A) * tile(B)) =
  sum(fold(v) * A * B) / (H * W); products with the carriers are taken per chip (each
  bit's carrier is a sum of shifted copies of one chip's), by FFT on the tile.
  """
  carrier_hat, highpass_hat, chip_to_bit, energy_KxBxB = constants
  x = frames_NxHxWx3.astype(jnp.float32)
  n, h, w, _ = x.shape
  f = activity_block
  p = energy_KxBxB.shape[-1] * f
  c = p // chip_px
  # Weight (local std + 1) ** power with mean 1 (power < 0: more mark in flat areas).
  # The weight is constant over each f x f block, so its folds are taken on the blocks.
  weight_c = wops.std_weight(std_c, power)
  weight = wops.repeat_blocks(weight_c, f)[:, :h, :w]
  # The detector's correlation of bit k with the picture itself (r), and with a unit mark
  # (the mark reaches the detector times the mark's weight and the detector's, both
  # taken per block for the gain).
  w_power, w_offset = detector_weight
  if w_power:
    both_NxBxB = wops.fold_batch(weight_c * (std_c + w_offset) ** -w_power, p // f)
    gain_NxK = jnp.einsum("nab,kab->nk", both_NxBxB, energy_KxBxB)
  else:
    gain_NxK = plain_gain_K[None]
  host_chips = wops.chip_correlate(wops.fold_batch(r_NxHxW, p), highpass_hat, chip_px)
  host_NxK = host_chips.reshape(n, c * c) @ chip_to_bit
  code_chips = (chip_to_bit @ code_K).reshape(1, c, c)
  mark_PxP = wops.chip_synthesise(code_chips, carrier_hat, chip_px)
  # A bit with (almost) no carrier in a frame smaller than the tile is not cancelled.
  seen = gain_NxK > 1e-2 * jnp.max(gain_NxK, axis=1, keepdims=True)
  coef_NxK = jnp.where(seen, cancel * host_NxK / jnp.where(seen, gain_NxK, 1.0), 0.0)
  undo_chips = (coef_NxK @ chip_to_bit.T).reshape(n, c, c)
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
  weighting = _detector_weight(config)
  r, std_c = _residual(frames, float(config.clip_residual), float(config.blur_sigma),
                       weighting)
  return _mark(frames, r, std_c, codeword(payload, config), _chip_constants(config),
               _plain_gain(config, *frames.shape[1:3]), float(config.strength),
               float(config.cancel), float(config.activity_power), weighting,
               config.chip_px)


def _plain_gain(config: WatermarkConfig, h: int, w: int) -> np.ndarray:
  """float32 (K,): sum over an (h, w) frame of each bit's tiled highpass carrier squared
  (the unweighted detector's response to a unit mark); zeros when the detector weighs."""
  if config.weight_power:
    return np.zeros(CODE_BITS, np.float32)
  p = config.period
  rows, cols = (np.bincount(np.arange(n) % p, minlength=p).astype(np.float32) for n in (h, w))
  return np.einsum("p,kpq,q->k", rows, highpass_carrier(config) ** 2, cols)


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
