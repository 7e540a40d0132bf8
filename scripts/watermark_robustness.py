"""Robustness, false positives, PSNR and cost of deepjax's pixel watermark on real clips.

    nice -n 10 python scripts/watermark_robustness.py --frames 48 --json out.json

For each clip (real footage in ../shared/data/videos; the frames themselves are marked),
the marked frames are written as deepjax writes videos (`write_video`, CRF 15) and then
transformed: ffmpeg re-encode at CRF 23 / 28, half size (ffmpeg scale, CRF 18), half
size + CRF 28, 10 % cropped off each side, brightness x1.1 / x0.9, one frame as PNG.
Per transformation: bit accuracy per frame (the 32 payload bits as the detector decodes
them: `bit_acc_mean`), the channel bits' accuracy before decoding (`channel_bit_acc_mean`)
and at the best scale and shift chosen knowing the payload (what a perfect
synchronisation would read: `bit_acc_best_shift`), the share of frames that decode to the exact payload, whether the clip
(all its frames together) decodes to it, and any wrong payload. Then: per-frame and
per-clip false detections on the unmarked frames of every clip in the folder, PSNR of
marked vs unmarked frames, and the marking overhead (`deepjax.bench.provenance`: mark +
write + sign vs write, same process). `--method dwtdct` measures invisible-watermark's DWT-DCT instead (its
package path via --rival_path; it has no detection statistic, so only bit accuracy
and a majority-vote clip decode are reported). `--method rivagan` measures the RivaGAN
model bundled in invisible-watermark's wheel the same way, run by onnxruntime (both under
--rival_path: `pip install --no-deps --target DIR invisible-watermark onnxruntime`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import imageio_ffmpeg
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from deepjax.data.video import read_image, read_video, write_image, write_video  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_code  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_detect  # pylint: disable=wrong-import-position

PAYLOAD = 0x5EED1234
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
CLIPS = ("lp_d0", "lp_d3", "lp_d9", "lp_s13", "tpsmm_driving")


def psnr_db(marked, frames):
  """PSNR in dB of uint8 marked frames against the unmarked ones, over all their pixels."""
  return float(10 * np.log10(255 ** 2 / np.mean((marked.astype(np.float64) - frames) ** 2)))


def ffmpeg(src, dst, crf, half=False, extra=()):
  vf = ["-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2"] if half else []
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", src, *vf,
                  "-c:v", "libx264", "-crf", str(crf), *extra, "-pix_fmt", "yuv420p", dst],
                 check=True)
  return read_video(dst)[0]


def transforms(marked, folder):
  """-> {name: uint8 frames} of the marked frames after each transformation."""
  src = os.path.join(folder, "marked.mp4")
  write_video(src, marked, 25)
  written = read_video(src)[0]
  h, w = written.shape[1:3]
  dy, dx = h // 10, w // 10
  png = os.path.join(folder, "frame.png")
  write_image(png, written[len(written) // 2])
  bright = lambda f: np.clip(np.round(written.astype(np.float32) * f), 0, 255).astype(np.uint8)
  return {
      "written (CRF 15)": written,
      "CRF 23": ffmpeg(src, os.path.join(folder, "c23.mp4"), 23),
      "CRF 28": ffmpeg(src, os.path.join(folder, "c28.mp4"), 28),
      "half size": ffmpeg(src, os.path.join(folder, "h.mp4"), 18, half=True),
      "half + CRF 28": ffmpeg(src, os.path.join(folder, "h28.mp4"), 28, half=True),
      "crop 10% each side": written[:, dy:h - dy, dx:w - dx],
      "brightness +10%": bright(1.1),
      "brightness -10%": bright(0.9),
      "PNG of one frame": read_image(png)[None],
  }


class DeepjaxMark:
  name = "deepjax spread-spectrum"

  def __init__(self):
    self.message = watermark_code.message_bits(PAYLOAD)
    self.truth = watermark_code.encode(self.message)  # channel bits, de-whitened

  def embed(self, frames):
    return watermark.embed(frames, PAYLOAD)

  def frames(self, frames):
    """-> (payload bit accuracy per frame as decoded, exact decodes per frame, wrong
    payloads, channel bit accuracy per frame before decoding)."""
    dets = watermark.detect_frames(frames)
    acc = [float(np.mean(d.bits[:32] == self.message[:32])) for d in dets]
    raw = [float(np.mean(d.raw_bits == self.truth)) for d in dets]
    return acc, [d.payload == PAYLOAD for d in dets], sum(
        d.found and d.payload != PAYLOAD for d in dets), raw

  def clip(self, frames):
    d = watermark.detect_clip(frames)
    return d.payload == PAYLOAD, d.found and d.payload != PAYLOAD

  def best_shift(self, frames):
    """Bit accuracy per frame at the best of every candidate scale and shift, chosen knowing
    the payload: what a perfect synchronisation would read (a bound, not a detector)."""
    cfg = watermark.WatermarkConfig()
    out = []
    for f in frames:
      best = 0.0
      for s in cfg.scales:
        period = watermark_detect.period_at(s, cfg)
        folded = watermark.fold(watermark.residual(f, s, cfg), period)
        templates = watermark_detect.templates_at(cfg, period)
        corr = np.real(np.fft.ifft2(np.fft.fft2(folded)[None] * np.conj(templates)))
        truth = (watermark.codeword(PAYLOAD, cfg) > 0)[:, None, None]  # carrier signs
        best = max(best, float(((corr > 0) == truth).mean(0).max()))
      out.append(best)
    return out

  def found(self, frames):
    return [d.found for d in watermark.detect_frames(frames)], watermark.detect_clip(frames).found


class _RivalMark:
  """A rival mark read as 32 bit scores in [0, 1] per frame (`_scores`), thresholded at 0.5;
  a clip's bits are its frames' mean scores. No detection statistic, so no false positives
  are counted."""
  truth = watermark_code.message_bits(PAYLOAD)[:32]  # the payload's bits, MSB first

  def frames(self, frames):
    bits = (self._scores(frames) > 0.5).astype(np.uint8)
    acc = [float(np.mean(b == self.truth)) for b in bits]
    return acc, [bool(np.all(b == self.truth)) for b in bits], 0

  def clip(self, frames):
    return bool(np.all((self._scores(frames).mean(0) > 0.5) == self.truth)), False

  def found(self, frames):
    return [], False


class DwtDct(_RivalMark):
  name = "invisible-watermark dwtDct"

  def __init__(self):
    from imwatermark import WatermarkDecoder, WatermarkEncoder  # pylint: disable=import-outside-toplevel
    self.enc, self.dec = WatermarkEncoder(), WatermarkDecoder("bits", 32)
    self.enc.set_watermark("bits", list(self.truth))

  def embed(self, frames):
    return np.stack([self.enc.encode(f[..., ::-1].copy(), "dwtDct")[..., ::-1] for f in frames])

  def _scores(self, frames):
    return np.stack([np.asarray(self.dec.decode(f[..., ::-1].copy(), "dwtDct"), np.float32)
                     for f in frames])


class RivaGan(_RivalMark):
  """invisible-watermark's RivaGAN: a learned 32-bit encoder/decoder (ONNX, from its wheel).
  Frames go in as float32 (N, 3, 1, H, W) in [-1, 1]; the decoder gives one score in
  [0, 1] per bit."""
  name = "invisible-watermark rivaGAN"

  def __init__(self, rival_path):
    import onnxruntime  # pylint: disable=import-outside-toplevel
    paths = [os.path.join(rival_path, "imwatermark", f"rivagan_{p}.onnx")
             for p in ("encoder", "decoder")]
    for path in paths:
      if not os.path.isfile(path):
        raise FileNotFoundError(f"no RivaGAN model at {path}")
    self.enc, self.dec = (onnxruntime.InferenceSession(path) for path in paths)
    self._last = None

  @staticmethod
  def _in(frames):
    return (frames.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)[:, :, None]

  def embed(self, frames, batch=8):
    out = []
    for i in range(0, len(frames), batch):
      x = self._in(frames[i:i + batch])
      data = np.repeat(self.truth[None].astype(np.float32), len(x), 0)
      y = self.enc.run(None, {"frame": x, "data": data})[0][:, :, 0].transpose(0, 2, 3, 1)
      out.append(np.clip(np.round((y + 1.0) * 127.5), 0, 255).astype(np.uint8))
    return np.concatenate(out)

  def _scores(self, frames, batch=8):
    """-> float32 (N, 32); the last call's result is reused for the same array (`clip`
    follows `frames` on each transformation)."""
    if self._last is None or self._last[0] is not frames:
      scores = np.concatenate([self.dec.run(None, {"frame": self._in(frames[i:i + batch])})[0]
                               for i in range(0, len(frames), batch)])
      self._last = (frames, scores)
    return self._last[1]


def measure_clip(method, name, n, folder, size=None):
  frames = read_video(os.path.join(DATA, "videos", name + ".mp4"), max_frames=2 * n)[0][::2][:n]
  if size:  # square frames of an animation's size
    frames = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC))
                       for f in frames])
  t0 = time.perf_counter()
  marked = method.embed(frames)
  mark_s = time.perf_counter() - t0
  psnr = psnr_db(marked, frames)
  rows = {}
  for tname, out in transforms(marked, folder).items():
    acc, exact, wrong, *raw = method.frames(out)
    clip_ok, clip_wrong = method.clip(out)
    rows[tname] = {"frames": len(out), "bit_acc_mean": float(np.mean(acc)),
                   **({"channel_bit_acc_mean": float(np.mean(raw[0]))} if raw else {}),
                   **({"bit_acc_best_shift": float(np.mean(method.best_shift(out)))}
                      if hasattr(method, "best_shift") else {}),
                   "bit_acc_min": float(np.min(acc)), "frames_exact": float(np.mean(exact)),
                   "clip_exact": bool(clip_ok), "wrong_payloads": int(wrong + clip_wrong)}
  return {"frames": len(frames), "size": list(frames.shape[1:3]), "psnr_db": float(psnr),
          "mark_s_per_frame": mark_s / len(frames), "transforms": rows}


def false_positives(method, n):
  videos = sorted(f for f in os.listdir(os.path.join(DATA, "videos")) if f.endswith(".mp4"))
  photos = sorted(os.listdir(os.path.join(DATA, "photos")))
  frames_found, frames_total, clips_found = 0, 0, []
  for v in videos:
    frames = read_video(os.path.join(DATA, "videos", v), max_frames=2 * n)[0][::2][:n]
    per_frame, clip = method.found(frames)
    frames_found += sum(per_frame)
    frames_total += len(per_frame)
    if clip:
      clips_found.append(v)
  photos_found = sum(sum(method.found(read_image(os.path.join(DATA, "photos", p))[None])[0])
                     for p in photos)
  return {"clips": len(videos), "frames": frames_total, "frames_found": frames_found,
          "clips_found": clips_found, "photos": len(photos), "photos_found": photos_found,
          "bound_per_decision": watermark.false_positive_rate()}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--frames", type=int, default=48, help="frames per clip (every other one)")
  ap.add_argument("--clips", nargs="+", default=list(CLIPS))
  ap.add_argument("--size", type=int, default=None,
                  help="resize frames to SIZE x SIZE before marking (e.g. 256: animation outputs)")
  ap.add_argument("--fp_frames", type=int, default=24, help="unmarked frames per clip")
  ap.add_argument("--method", choices=("deepjax", "dwtdct", "rivagan"), default="deepjax")
  ap.add_argument("--rival_path", default=None,
                  help="sys.path entry with imwatermark (and onnxruntime, for rivagan)")
  ap.add_argument("--parts", default="clips,overhead,fp",
                  help="comma list of: clips (robustness), overhead, fp (false positives)")
  ap.add_argument("--json", default=None, help="write the results here too")
  args = ap.parse_args()
  if args.method != "deepjax" and not args.rival_path:
    ap.error(f"--method {args.method} needs --rival_path (a folder with imwatermark"
             f"{' and onnxruntime' if args.method == 'rivagan' else ''})")
  if args.rival_path:
    sys.path.insert(0, args.rival_path)
  try:
    method = {"deepjax": DeepjaxMark, "dwtdct": DwtDct,
              "rivagan": lambda: RivaGan(args.rival_path)}[args.method]()
  except (ImportError, FileNotFoundError) as e:
    ap.error(f"--method {args.method}: {e}")
  result = {"method": method.name, "payload": f"{PAYLOAD:08x}", "clips": {}}
  parts = args.parts.split(",")
  with tempfile.TemporaryDirectory() as folder:
    for name in args.clips if "clips" in parts else ():
      result["clips"][name] = measure_clip(method, name, args.frames, folder, args.size)
      print(name, json.dumps(result["clips"][name]), flush=True)
  if "overhead" in parts and args.method == "deepjax":
    from deepjax.bench import provenance as bench  # pylint: disable=import-outside-toplevel
    row = bench.provenance_row(32, video=os.path.join(DATA, "videos", "lp_d0.mp4"))
    result["overhead"] = {"note": row.note, "mark_s_per_frame": row.step_s / row.batch,
                          **row.extra}
    print("overhead", json.dumps(result["overhead"]), flush=True)
  if args.method == "deepjax" and "fp" in parts:
    result["false_positives"] = false_positives(method, args.fp_frames)
    print("false_positives", json.dumps(result["false_positives"]), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
