"""Alternatives to deepjax's watermark design that were measured and not adopted (README,
Provenance). Two experiments on real clips of ../shared/data resized to --size:

  python scripts/watermark_alternatives.py search --clips lp_d9 tpsmm_driving lp_s13
      The position (shift) search weighted by the fold's spectrum: W(f) = lowpass(fc) /
      smoothed |X(f)| ** p (p = 1, no low-pass: what `watermark_detect.soft_bits` does). Per
      variant and transformation (half size + CRF 28, 10 % crop): the per-frame bit accuracy
      at the shift the variant picks, and at the true shift (bits read with the same
      weighting), and the clip's accuracy at the shift picked on the summed folds.
  python scripts/watermark_alternatives.py profile --chips 16 --chip_px 8 --smooth 2 \\
      --blur_sigma 5.33
      Another mark profile (`WatermarkConfig` fields; `--weight_power 0`: the detector
      without its weighting, and marking without cancelling for it), measured as
      scripts/watermark_robustness.py measures the default: PSNR and per-frame accuracy /
      exact share / clip decode per transformation.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import watermark_robustness as wr  # pylint: disable=wrong-import-position
from deepjax.data.video import read_video, write_video  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark as wm  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_detect as wdet  # pylint: disable=wrong-import-position

PROFILE_FIELDS = (("chips", int), ("chip_px", int), ("smooth", float), ("blur_sigma", float),
                  ("strength", float), ("clip_residual", float), ("weight_power", float),
                  ("weight_offset", float), ("weight_sigma", float), ("activity_power", float),
                  ("shift_candidates", int), ("origin_candidate", int))
VARIANTS = ((0, None), (0.5, None), (1, None), (2, None), (0.5, 0.2), (1, 0.2), (1, 0.3))


def frames_of(clip, n, size):
  frames = read_video(os.path.join(wr.DATA, "videos", clip + ".mp4"), max_frames=2 * n)[0][::2][:n]
  return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC))
                   for f in frames]) if size else frames


def weight(spec, p, fc):
  out = np.ones(spec.shape)
  if p:
    out = out / (ndimage.uniform_filter(np.abs(spec) ** 2, 5, mode="wrap") ** (p / 2) + 1e-6)
  if fc:
    fy, fx = np.fft.fftfreq(spec.shape[0])[:, None], np.fft.fftfreq(spec.shape[1])[None]
    out = out * np.exp(-(fy ** 2 + fx ** 2) / (2 * fc ** 2))
  return out


def correlations(spec, templates, wgt):
  c = np.real(np.fft.ifft2((spec * wgt)[None] * np.conj(templates)))
  return c / (c.std(axis=(1, 2), keepdims=True) + 1e-9)


def picked(c):
  score = (c ** 2).sum(0)
  return np.unravel_index(score.argmax(), score.shape)


def search(args):
  cfg = wm.WatermarkConfig()
  signs = (wm.codeword(wr.PAYLOAD, cfg) > 0)[:, None, None]
  for clip in args.clips:
    marked = wm.embed(frames_of(clip, args.frames, args.size), wr.PAYLOAD, cfg)
    h, w = marked.shape[1:3]
    with tempfile.TemporaryDirectory() as folder:
      src = os.path.join(folder, "m.mp4")
      write_video(src, marked, 25)
      outs = {"half + CRF 28": (wr.ffmpeg(src, os.path.join(folder, "h28.mp4"), 28, half=True), 0.5),
              "crop 10%": (marked[:, h // 10:h - h // 10, w // 10:w - w // 10], 1.0)}
    for name, (out, scale) in outs.items():
      period = wdet.period_at(scale, cfg)
      templates = wdet.templates_at(cfg, period)
      sync, bits, total = {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}, 0
      for f in out:
        folded = wm.fold(wm.residual(f, scale, cfg), period)
        total = total + folded
        spec = np.fft.fft2(folded)
        acc = ((correlations(spec, templates, 1.0) > 0) == signs).mean(0)
        true = np.unravel_index(acc.argmax(), acc.shape)
        for v in VARIANTS:
          c = correlations(spec, templates, weight(spec, *v))
          sync[v].append(acc[picked(c)])
          bits[v].append(np.mean((c[:, true[0], true[1]] > 0) == signs[:, 0, 0]))
      spec = np.fft.fft2(total)
      acc = ((correlations(spec, templates, 1.0) > 0) == signs).mean(0)
      clip_acc = {v: acc[picked(correlations(spec, templates, weight(spec, *v)))]
                  for v in VARIANTS}
      print(f"{clip} {args.size or 'native'} px, {name}: per variant (p, fc): frame accuracy "
            "at the picked shift / at the true shift, clip accuracy at its picked shift")
      for v in VARIANTS:
        print(f"  p={v[0]} fc={v[1]}: {np.mean(sync[v]):.3f} / {np.mean(bits[v]):.3f}, "
              f"clip {clip_acc[v]:.3f}", flush=True)


def profile(args):
  fields = {k: getattr(args, k) for k, _ in PROFILE_FIELDS if getattr(args, k) is not None}
  cfg = wm.WatermarkConfig(**fields)

  class Mark(wr.DeepjaxMark):
    def embed(self, frames):
      return wm.embed(frames, wr.PAYLOAD, cfg)

    def frames(self, frames):
      dets = wm.detect_frames(frames, cfg)
      return ([float(np.mean(d.bits[:32] == self.message[:32])) for d in dets],
              [d.payload == wr.PAYLOAD for d in dets],
              sum(d.found and d.payload != wr.PAYLOAD for d in dets),
              [float(np.mean(d.raw_bits == self.truth)) for d in dets])

    def clip(self, frames):
      d = wm.detect_clip(frames, cfg)
      return d.payload == wr.PAYLOAD, d.found and d.payload != wr.PAYLOAD

  print(f"profile {fields} (period {cfg.period} px)")
  with tempfile.TemporaryDirectory() as folder:
    for clip in args.clips:
      r = wr.measure_clip(Mark(), clip, args.frames, folder, args.size)
      print(f"{clip} {r['size']} PSNR {r['psnr_db']:.1f} dB")
      for name, t in r["transforms"].items():
        print(f"  {name:22s} bit accuracy {t['bit_acc_mean']:.3f} (channel "
              f"{t['channel_bit_acc_mean']:.3f}), exact frames "
              f"{t['frames_exact']:.2f}, clip {'decodes' if t['clip_exact'] else 'fails'}",
              flush=True)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("experiment", choices=("search", "profile"))
  ap.add_argument("--clips", nargs="+", default=["lp_d9", "tpsmm_driving", "lp_s13"])
  ap.add_argument("--frames", type=int, default=12)
  ap.add_argument("--size", type=int, default=256, help="0: the clips' own size")
  for name, kind in PROFILE_FIELDS:
    ap.add_argument(f"--{name}", type=kind, default=None)
  args = ap.parse_args()
  search(args) if args.experiment == "search" else profile(args)  # pylint: disable=expression-not-assigned


if __name__ == "__main__":
  main()
