"""Extraction speed: detection + landmarks + alignment + crop per frame (no file output)."""
from __future__ import annotations

import os
import time

from deepjax.data import video
from deepjax.errors import UserError
from deepjax.faces import detect, track
from deepjax.ops import align


# A 512x512 talking-head clip of the shared footage (../shared/data next to the repo).
DEFAULT_CLIP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "shared", "data", "videos", "lp_d11.mp4")


def bench_extract(video_path: str | None = None, max_frames: int = 100, size: int = 64,
                  backend: str = "dlib") -> dict:
  """Times the per-frame extraction work on the first `max_frames` frames of a clip.

  `video_path` defaults to the shared 512 px clip `lp_d11.mp4` (UserError if absent).

  Decoding is done first and not timed; the models are loaded (and warmed on the
  first frame) before timing. Returns {"frames", "seconds", "frames_per_s",
  "detection_rate", "decode_frames_per_s", "width", "height", "backend"}.
  """
  video_path = video_path or DEFAULT_CLIP
  if not os.path.isfile(video_path):
    raise UserError(f"benchmark clip not found: {video_path}")
  t0 = time.perf_counter()
  frames, _, _ = video.read_video(video_path, max_frames=max_frames)
  decode_s = time.perf_counter() - t0
  detect.detect_faces(frames[0], backend)  # loads the models
  detector = detect.FrameDetector(backend)  # as `deepjax extract` runs it
  found = 0
  start = time.perf_counter()
  for frame in frames:
    faces = detector(frame)
    if faces:
      found += 1
      face = faces[track.main_face_index(faces, frame.shape[:2])]
      m = align.alignment_matrix(face.landmarks, size)
      align.crop(frame, m, size)
  seconds = time.perf_counter() - start
  n = len(frames)
  return {"row": "extract", "clip": os.path.basename(video_path), "frames": n, "seconds": round(seconds, 3), "frames_per_s": round(n / seconds, 2),
          "detection_rate": round(found / n, 4), "decode_frames_per_s": round(n / decode_s, 1),
          "width": int(frames.shape[2]), "height": int(frames.shape[1]), "backend": backend}
