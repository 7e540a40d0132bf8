"""Alternatives to deepjax's watermark design that were measured and not adopted
(docs/provenance.md). Three experiments on real clips of ../shared/data resized to --size:

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
  python scripts/watermark_alternatives.py diagnose --clips tpsmm_driving lp_d3 --frames 16
      Where the mark is lost after half size + CRF 28: the marked and the unmarked frames
      go through the same ffmpeg command, and the channel bits are read at the true shift
      (scale 0.5) from the marked copy (received), from the marked minus the unmarked copy
      (what of the mark survived H.264, without the picture), from the unmarked copy plus
      the mark halved without H.264 (the picture as H.264 left it, against an intact mark)
      and from that halved mark alone; with the share of frames that decode at the true
      shift, how systematic the errors are (bits wrong on average over the frames, and
      whether they follow the picture: the unmarked copy's own correlation with each bit's
      carrier), and the survival gain of the mark per frequency band. `--read key=value ...`
      reads with other detector fields (`WatermarkConfig`) than the mark was made for;
      `--x264 ARG ...` adds ffmpeg arguments to the re-encoding (e.g. `--x264=-x264-params
      --x264=keyint=1`: every frame an I-frame).
"""
import argparse
import dataclasses
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
from deepjax.provenance import watermark_carrier as wcarrier  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_code as wcode  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_detect as wdet  # pylint: disable=wrong-import-position
from deepjax.provenance.watermark_carrier import LUMA  # pylint: disable=wrong-import-position

PROFILE_FIELDS = (("chips", int), ("chip_px", int), ("smooth", float), ("blur_sigma", float),
                  ("strength", float), ("clip_residual", float), ("weight_power", float),
                  ("weight_offset", float), ("weight_sigma", float), ("activity_power", float),
                  ("shift_candidates", int), ("origin_candidate", int), ("cancel", float))
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


def _gray(y):
  """float32 (H, W, 3) whose luminance is y (LUMA sums to 1)."""
  return np.repeat(y[..., None], 3, -1)


def _margins(lumas, cfg, detector=True):
  """float (N, K): each channel bit's soft value at shift (0, 0), scale 0.5, times its true
  sign (positive: read right), for float luminance (N, H, W)."""
  period = wdet.period_at(0.5, cfg)
  templates = wdet.templates_at(cfg, period)
  out = []
  for y in lumas:
    r = (wdet.residual(_gray(y), 0.5, cfg) if detector else
         y - ndimage.gaussian_filter(y, cfg.blur_sigma * 0.5, mode="mirror"))
    c = np.real(np.fft.ifft2(np.fft.fft2(wdet.fold(r, period))[None] * np.conj(templates)))
    out.append(c[:, 0, 0] / (c.std(axis=(1, 2)) + 1e-9))
  return np.array(out) * wm.codeword(wr.PAYLOAD, cfg)


def _at_origin(margins, cfg):
  """-> (channel accuracy, share decoding) of `_margins` (N, K)."""
  sign = wm.codeword(wr.PAYLOAD, cfg)
  whitening = wcarrier.carrier(cfg)[2]
  exact = sum(wcode.decode((m * sign)[None], whitening)[0][0] == wr.PAYLOAD for m in margins)
  return float(np.mean(margins > 0)), exact / len(margins)


def _per_bit(received, host):
  """How systematic the errors are, from signed margins (N, K) of the marked and of the
  unmarked copy: (share of bits wrong on average over the frames, split-half correlation of
  the per-bit means, correlation of the per-bit means with the unmarked copy's)."""
  mean = received.mean(0)
  halves = np.corrcoef(received[0::2].mean(0), received[1::2].mean(0))[0, 1]
  return float(np.mean(mean < 0)), float(halves), float(np.corrcoef(mean, host.mean(0))[0, 1])


def _band_gains(survived, ideal, edges=(0, .03, .06, .09, .12, .15, .18, .21, .25, .3, .5)):
  """-> [(lo, hi, gain, share of the mark's power)] per radial band (cycles per pixel): the
  least-squares gain of `survived` on `ideal` (float (N, H, W))."""
  s_hat, i_hat = np.fft.fft2(survived), np.fft.fft2(ideal)
  fy, fx = (np.fft.fftfreq(n) for n in ideal.shape[1:])
  band = np.digitize(np.sqrt(fy[:, None] ** 2 + fx[None] ** 2), edges)
  total = np.sum(np.abs(i_hat) ** 2)
  out = []
  for b in range(1, len(edges)):
    s, i = s_hat[:, band == b], i_hat[:, band == b]
    power = np.sum(np.abs(i) ** 2)
    out.append((edges[b - 1], edges[b], np.sum(np.real(s * np.conj(i))) / power, power / total))
  return out


def diagnose(args):
  fields = {k: getattr(args, k) for k, _ in PROFILE_FIELDS if getattr(args, k) is not None}
  cfg = wm.WatermarkConfig(**fields)
  read = dict(kv.split("=") for kv in args.read)
  read_cfg = dataclasses.replace(cfg, **{k: type(getattr(cfg, k))(v) for k, v in read.items()})
  luma = lambda frames: frames.astype(np.float32) @ LUMA
  print(f"mark {fields}, read {read}, x264 {args.x264}: channel accuracy / frames decoding "
        "at the true shift after half size + CRF 28")
  with tempfile.TemporaryDirectory() as folder:
    for clip in args.clips:
      frames = frames_of(clip, args.frames, args.size)
      marked = wm.embed(frames, wr.PAYLOAD, cfg)
      coded = []
      for name, x in (("marked", marked), ("unmarked", frames)):
        write_video(os.path.join(folder, name + ".mp4"), x, 25)
        coded.append(luma(wr.ffmpeg(os.path.join(folder, name + ".mp4"),
                                    os.path.join(folder, name + "_h28.mp4"), 28, half=True,
                                    extra=args.x264)))
      h, w = coded[0].shape[1:]
      halved = np.stack([np.asarray(Image.fromarray(d).resize((w, h), Image.BICUBIC))
                         for d in luma(marked) - luma(frames)])
      rows = (("received", coded[0], True), ("survived", coded[0] - coded[1], False),
              ("picture + intact mark", coded[1] + halved, True), ("intact mark", halved, False))
      margins = {name: _margins(x, read_cfg, det) for name, x, det in rows}
      print(clip, "  ".join(f"{name} %.3f / %.2f" % _at_origin(m, read_cfg)
                            for name, m in margins.items()))
      print("  per bit: %.2f wrong on average over the frames; per-bit means, split-half "
            "correlation %.2f, correlation with the unmarked copy's %.2f" % _per_bit(
                margins["received"], _margins(coded[1], read_cfg)))
      print("  survival gain per band (cycles/px at half size: gain, share of mark power): " +
            ", ".join(f"{lo:.2f}-{hi:.2f}: {g:.2f}, {p:.2f}"
                      for lo, hi, g, p in _band_gains(coded[0] - coded[1], halved)), flush=True)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("experiment", choices=("search", "profile", "diagnose"))
  ap.add_argument("--clips", nargs="+", default=["lp_d9", "tpsmm_driving", "lp_s13"])
  ap.add_argument("--frames", type=int, default=12)
  ap.add_argument("--size", type=int, default=256, help="0: the clips' own size")
  for name, kind in PROFILE_FIELDS:
    ap.add_argument(f"--{name}", type=kind, default=None)
  ap.add_argument("--read", nargs="*", default=[],
                  help="diagnose: key=value detector fields for reading")
  ap.add_argument("--x264", action="append", default=[],
                  help="diagnose: an extra ffmpeg argument for the re-encoding (repeatable)")
  args = ap.parse_args()
  {"search": search, "profile": profile, "diagnose": diagnose}[args.experiment](args)


if __name__ == "__main__":
  main()
