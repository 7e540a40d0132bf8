"""Extraction speed (row `extract` of `deepjax bench`): `deepjax extract`'s per-source
work, `faces.extract.extract_source`, on the first frames of a clip."""
from __future__ import annotations

import os
import tempfile
import time

from deepjax.bench.timing import Result
from deepjax.data import video
from deepjax.errors import UserError
from deepjax.faces import detect, extract

# A 512x512 talking-head clip of the shared footage (../shared/data next to the repo).
DEFAULT_CLIP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "shared", "data", "videos", "lp_d11.mp4")


def extract_row(video_path: str | None = None, max_frames: int = 100, size: int = 64,
                backend: str = "dlib") -> Result:
  """Frames/s of `extract_source` (default options but `size`, `max_frames`, `backend`)
  on the first `max_frames` frames of a clip: decoding (twice: detection pass and crop
  pass), detection + landmarks, alignment, crop and PNG writing.

  `video_path` defaults to the shared 512 px clip `lp_d11.mp4` (UserError if absent). The
  models are loaded (and warmed on the first frame) before timing; decoding alone is
  timed separately (note).
  """
  video_path = video_path or DEFAULT_CLIP
  if not os.path.isfile(video_path):
    raise UserError(f"benchmark clip not found: {video_path}")
  t0 = time.perf_counter()
  frames, _, _ = video.read_video(video_path, max_frames=max_frames)
  decode_s = time.perf_counter() - t0
  detect.detect_faces(frames[0], backend)  # loads the models
  opts = extract.ExtractOptions(size=size, detector=backend, max_frames=max_frames)
  with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
    t0 = time.perf_counter()
    out = extract.extract_source(video_path, "video", tmp, opts, backend)
    seconds = time.perf_counter() - t0
  n = out["source"]["frames_sampled"]
  rate = out["source"]["frames_with_face"] / n
  return Result(images_per_s=n / seconds,
                note=f"extract {os.path.basename(video_path)} ({backend}): faces in "
                     f"{100 * rate:.0f}% of {n} frames; decode alone {len(frames) / decode_s:.0f} "
                     "frames/s",
                extra={"frames": n, "seconds": seconds, "detection_rate": rate,
                       "decode_frames_per_s": len(frames) / decode_s,
                       "width": int(frames.shape[2]), "height": int(frames.shape[1])})
