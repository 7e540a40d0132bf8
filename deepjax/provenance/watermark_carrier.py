"""The watermark's key-derived pieces, shared by marking (`watermark`) and detection
(`watermark_detect`): the configuration, the carriers and the channel codeword.

The design is described in `deepjax.provenance.watermark`.
"""
import dataclasses
import functools

import numpy as np

from deepjax.provenance import watermark_code as wcode

__all__ = ["WatermarkConfig", "carrier", "layout", "chip_carrier", "highpass_carrier",
           "periodic_blur", "codeword", "false_positive_rate", "PAYLOAD_BITS", "CODE_BITS",
           "LUMA"]

PAYLOAD_BITS = wcode.PAYLOAD_BITS
CODE_BITS = wcode.CODE_BITS  # channel bits: the coded payload + CRC-32
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


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
  origin_candidate: bool = True  # ... and (0, 0), the uncropped frame's shift, always

  @property
  def period(self) -> int:
    return self.chips * self.chip_px


def false_positive_rate(config: WatermarkConfig = WatermarkConfig()) -> float:
  """Per-decision bound: trials (scales x shift candidates, the origin included) times
  2**-32."""
  shifts = config.shift_candidates + int(config.origin_candidate)
  return len(config.scales) * shifts * 2.0 ** -32


@functools.lru_cache(maxsize=8)
def carrier(config: WatermarkConfig):
  """-> (assign (C,C) int, signs (C,C) +-1, whitening (K,) 0/1, templates (K,P,P) f32),
  K = 192 channel bits.

  templates[k] is bit k's smoothed carrier tile; sum_k c_k * templates[k] is the mark
  tile for channel signs c (+-1), scaled to unit RMS for random c.
  """
  assign, signs, whitening = layout(config)
  return assign, signs, whitening, _sum_of_chips(config, chip_carrier(config))


@functools.lru_cache(maxsize=8)
def layout(config: WatermarkConfig):
  """-> (assign (C,C) int: each chip's channel bit, equal counts in random places;
  signs (C,C) float32 +-1; whitening (K,) uint8 0/1), all drawn from the key."""
  rng = np.random.default_rng(config.key)
  c = config.chips
  assign = rng.permutation(np.arange(c * c) % CODE_BITS).reshape(c, c)
  signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(c, c))
  whitening = rng.integers(0, 2, CODE_BITS).astype(np.uint8)
  return assign, signs, whitening


@functools.lru_cache(maxsize=8)
def chip_carrier(config: WatermarkConfig) -> np.ndarray:
  """float32 (P, P): the carrier of one chip at (0, 0), sign +1, smoothed and scaled as
  `carrier`'s templates are (any +-1 codeword's mark tile has unit RMS). A bit's carrier
  is the sum of its chips' copies, each shifted by chip_px per chip and signed."""
  signs = layout(config)[1]
  c, px = config.chips, config.chip_px
  one = np.zeros((c, c), np.float32)
  one[0, 0] = 1.0
  square = np.ones((px, px), np.float32)
  chip = periodic_blur(np.kron(one, square)[None], config.smooth)[0]
  total = periodic_blur(np.kron(signs, square)[None], config.smooth)[0]  # disjoint chips
  return (chip / np.sqrt(np.mean(total ** 2))).astype(np.float32)


def _sum_of_chips(config: WatermarkConfig, chip_PxP: np.ndarray) -> np.ndarray:
  """float32 (K, P, P): for each channel bit, the sum of `chip_PxP` (a periodic tile for
  the chip at (0, 0)) shifted to each of its chips and signed: one circular shift per
  chip, where blurring the K tiles one by one took 192 FFTs."""
  assign, signs, _ = layout(config)
  c, px, p = config.chips, config.chip_px, config.period
  tiles = np.zeros((CODE_BITS, p, p), np.float32)
  for i in range(c):
    for j in range(c):
      tiles[assign[i, j]] += signs[i, j] * np.roll(chip_PxP, (i * px, j * px), axis=(0, 1))
  return tiles


def periodic_blur(x: np.ndarray, sigma: float) -> np.ndarray:
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
  bits = wcode.encode(wcode.message_bits(payload)) ^ layout(config)[2]
  return (2.0 * bits - 1.0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def highpass_carrier(config: WatermarkConfig) -> np.ndarray:
  """float32 (K, P, P): each bit's carrier as the detector sees it at scale 1."""
  chip = chip_carrier(config)
  return _sum_of_chips(config, chip - periodic_blur(chip[None], config.blur_sigma)[0])
