"""Experiment: spread-transform dither modulation (STDM) of low-frequency DCT coefficients,
against the spread-spectrum mark, where that mark misses its target (docs/provenance.md):
256 px frames after half size + CRF 28.

    python scripts/watermark_qim.py --clips tpsmm_driving lp_d3 --frames 24

Per frame, the luminance's orthonormal 2-D DCT-II coefficients (u, v) with
`lo <= sqrt(u^2 + v^2) < hi` (index u is u / (2 H) cycles per pixel; DC excluded) are
split at random (a fixed seed) among the 192 channel bits (`watermark_carrier.codeword`,
the same convolutional code and CRC as deepjax's mark). Bit k's projection is
p_k = sum_j s_kj c_kj / sqrt(L) over its L coefficients (s: random signs), divided by the
RMS g of all coefficients in the band (so a gain on the picture, e.g. brightness x1.1,
leaves it as it was); marking moves p_k / g to the nearest point of the lattice
delta * Z + bit_k * delta / 2 (plus a key-derived dither), times `alpha` (distortion
compensation: 1 moves it all the way), spread evenly over its coefficients, and adds the
change to R, G and B alike. Reading: the same projections of the frame as received (a
centre-aligned DCT-II keeps index u at u / (2 H) cycles per pixel after a resize, so the
half-size frame's coefficients (u, v) are read where the full frame's were; g absorbs the
resize's gain), soft bits from the distances to the two lattices, Viterbi-decoded.

The alignment is known here (no crop): this measures the channel, what the spread-spectrum
mark's `watermark_alternatives.py diagnose` reads at the true shift (channel accuracy
0.737 on tpsmm_driving, 0.804 on lp_d3 at 40.5 dB). Printed per clip: PSNR, and per
transformation the channel accuracy and the share of frames decoding to the payload.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from scipy import fft as sfft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import watermark_alternatives as walt  # pylint: disable=wrong-import-position
import watermark_robustness as wr  # pylint: disable=wrong-import-position
from deepjax.data.video import read_video, write_video  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_carrier as wcarrier  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_code as wcode  # pylint: disable=wrong-import-position
from deepjax.provenance.watermark_carrier import LUMA  # pylint: disable=wrong-import-position


class Stdm:
  """The STDM mark for square frames of one size; see the module docstring."""

  def __init__(self, size, lo, hi, delta, alpha, seed=7):
    u, v = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    radius = np.sqrt(u ** 2 + v ** 2)
    band = np.flatnonzero((radius >= lo) & (radius < hi))
    k = wcarrier.CODE_BITS
    rng = np.random.default_rng(seed)
    per_bit = len(band) // k
    if per_bit < 1:
      raise ValueError(f"band [{lo}, {hi}) has {len(band)} coefficients for {k} bits")
    self.band = band
    self.index = rng.permutation(band)[:k * per_bit].reshape(k, per_bit)  # flat (u, v)
    self.signs = rng.choice([-1.0, 1.0], size=self.index.shape) / np.sqrt(per_bit)
    self.dither = rng.uniform(0, delta, size=k)
    self.size, self.delta, self.alpha = size, delta, alpha

  def _projections(self, y):
    """-> (p / g (K,), coefficients (H*W,) of y, g) for float luminance y (H, W), read
    in this mark's index space (a smaller frame's coefficients beyond its size are 0)."""
    c = np.zeros((self.size, self.size))
    d = sfft.dctn(y, norm="ortho")
    n = min(self.size, d.shape[0]), min(self.size, d.shape[1])
    c[:n[0], :n[1]] = d[:n[0], :n[1]]
    c = c.ravel()
    g = np.sqrt(np.mean(c[self.band] ** 2)) + 1e-9
    return (c[self.index] * self.signs).sum(1) / g, c, g

  def embed(self, frames, bits):
    """uint8 (N, H, W, 3), bits 0/1 (K,) -> marked uint8 (N, H, W, 3)."""
    out = []
    for f in frames:
      x = f.astype(np.float64)
      p, c, g = self._projections(x @ LUMA)
      shift = self.dither + bits * self.delta / 2
      target = np.round((p - shift) / self.delta) * self.delta + shift
      change = np.zeros_like(c)  # bit k's projection moves by e_k along its unit vector
      change[self.index] = (self.alpha * (target - p) * g)[:, None] * self.signs
      dy = sfft.idctn(change.reshape(self.size, self.size), norm="ortho")
      out.append(np.clip(np.round(x + dy[..., None]), 0, 255).astype(np.uint8))
    return np.stack(out)

  def soft(self, frames):
    """float (N, K) in [-1, 1]: + for bit 1, from the distances to the two lattices."""
    out = []
    for f in frames:
      p, _, _ = self._projections(f.astype(np.float64) @ LUMA)
      dist = []
      for b in (0, 1):
        shift = self.dither + b * self.delta / 2
        r = (p - shift) / self.delta
        dist.append(np.abs(r - np.round(r)))
      out.append(np.clip((dist[0] - dist[1]) * 4, -1, 1))
    return np.array(out)


def mark_bits():
  """uint8 (192,): the payload's channel bits, whitened as deepjax's mark whitens them."""
  return (wcarrier.codeword(wr.PAYLOAD) > 0).astype(np.uint8)


def measure(mark, frames, folder, x264):
  """-> (PSNR, {transformation: (channel accuracy, share of frames decoding)})."""
  bits_ = mark_bits()
  whitening = wcarrier.layout(wcarrier.WatermarkConfig())[2]
  marked = mark.embed(frames, bits_)
  psnr = wr.psnr_db(marked, frames)
  src = os.path.join(folder, "m.mp4")
  write_video(src, marked, 25)
  outs = {"written (CRF 15)": read_video(src)[0],
          "CRF 28": wr.ffmpeg(src, os.path.join(folder, "c28.mp4"), 28, extra=x264),
          "half size": wr.ffmpeg(src, os.path.join(folder, "h.mp4"), 18, half=True),
          "half + CRF 28": wr.ffmpeg(src, os.path.join(folder, "h28.mp4"), 28, half=True,
                                     extra=x264)}
  outs["brightness x1.1"] = np.clip(np.round(outs["written (CRF 15)"] * 1.1), 0, 255).astype(
      np.uint8)
  rows = {}
  for name, x in outs.items():
    soft = mark.soft(x)
    acc = float(np.mean((soft > 0) == bits_[None].astype(bool)))
    decoded = wcode.decode(soft, whitening)
    exact = np.mean([d[0] == wr.PAYLOAD for d in decoded])
    rows[name] = (acc, float(exact))
  return psnr, rows


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--clips", nargs="+", default=["tpsmm_driving", "lp_d3"])
  ap.add_argument("--frames", type=int, default=24)
  ap.add_argument("--size", type=int, default=256)
  ap.add_argument("--lo", type=float, default=2.0, help="band's lowest DCT radius (index)")
  ap.add_argument("--hi", type=float, default=24.0, help="band's highest DCT radius (index)")
  ap.add_argument("--delta", type=float, default=0.2, help="lattice step, in units of g")
  ap.add_argument("--alpha", type=float, default=1.0)
  ap.add_argument("--psnr", type=float, default=None,
                  help="scale delta per clip so that the marked frames have this PSNR")
  ap.add_argument("--x264", action="append", default=[],
                  help="an extra ffmpeg argument for the CRF 28 re-encodings (repeatable)")
  args = ap.parse_args()
  mark = Stdm(args.size, args.lo, args.hi, args.delta, args.alpha)
  print(f"STDM: band [{args.lo}, {args.hi}) = {len(mark.band)} coefficients, "
        f"{mark.index.shape[1]} per bit, delta {args.delta}, alpha {args.alpha}")
  with tempfile.TemporaryDirectory() as folder:
    for clip in args.clips:
      frames = walt.frames_of(clip, args.frames, args.size)
      delta = args.delta
      for _ in range(2 if args.psnr else 0):  # MSE grows as delta ** 2
        marked = Stdm(args.size, args.lo, args.hi, delta, args.alpha).embed(frames, mark_bits())
        delta *= 10 ** ((wr.psnr_db(marked, frames) - args.psnr) / 20)
      mark = Stdm(args.size, args.lo, args.hi, delta, args.alpha)
      psnr, rows = measure(mark, frames, folder, args.x264)
      print(clip, f"delta {delta:.3f} PSNR {psnr:.2f} dB  " + "  ".join(
          f"{k} {a:.3f} / {e:.2f}" for k, (a, e) in rows.items()), flush=True)


if __name__ == "__main__":
  main()
