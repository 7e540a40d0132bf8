"""Face extraction from photos and videos: detect, choose, smooth, align, crop, record.

`extract(inputs, out_dir, options)` is the library behind `deepjax extract`.
For every source (image or video) it:

1. detects faces on the sampled frames (every `every_n_frames`-th frame of the first
   `max_frames`) with `faces.detect.FrameDetector` (low-score HOG hits are re-checked
   by dlib's CNN when a face first appears, which rejects animal faces; the
   detection size adapts to the last frame's face size);
2. keeps the main face, all faces, or all faces with persistent track ids
   (`faces.track`), and smooths each track's landmarks over time (`smooth`);
3. aligns (`ops.align.alignment_matrix`), crops `size` x `size` and writes
   `<out_dir>/<source>_<frame:06d>_<face>.png` (face = index by size, or track id).

It returns the records that go into `alignments.json`:
`{"version": 1, "settings": {...}, "sources": [...], "faces": [...], "no_face": [...]}`
where each face record is `{"file", "source", "frame", "face", ["track"], "score",
"box" [l, t, r, b] frame px, "landmarks_frame" (68, 2) frame px, "matrix" 2x3
frame px -> crop px, "size", "landmarks" (68, 2) crop coordinates in [-1, 1]
(align_corners=False)}` and `no_face` lists `{"source", "frame"}` of sampled frames
where no face was kept. Frame indices count decoded frames from 0.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator, Optional

import numpy as np

from deepjax.data import video
from deepjax.errors import UserError
from deepjax.faces import detect, track
from deepjax.ops import align

FACE_MODES = ("main", "all", "track")
SMOOTH_FILTERS = ("average", "euro")


@dataclasses.dataclass
class ExtractOptions:
  """What to extract and how (see the module docstring and `deepjax extract`)."""
  size: int = 64
  coverage: float = 0.75
  centering: str = "face"
  detector: str = "auto"
  faces: str = "main"
  smooth: int = 0
  smooth_filter: str = "average"
  every_n_frames: int = 1
  max_frames: Optional[int] = None
  verify: bool = True

  def check(self):
    if self.size < 8 or self.size > 4096:
      raise UserError(f"crop size must be in [8, 4096] pixels, got {self.size}")
    if self.faces not in FACE_MODES:
      raise UserError(f"faces mode must be one of {FACE_MODES}, got {self.faces!r}")
    if self.smooth_filter not in SMOOTH_FILTERS:
      raise UserError(f"smoothing filter must be one of {SMOOTH_FILTERS}, got "
                      f"{self.smooth_filter!r}")
    if self.every_n_frames < 1:
      raise UserError(f"frame step (every_n_frames) must be >= 1, got {self.every_n_frames}")
    if self.max_frames is not None and self.max_frames < 1:
      raise UserError(f"max_frames must be >= 1, got {self.max_frames}")
    if self.smooth < 0:
      raise UserError(f"smoothing window must be >= 0 frames, got {self.smooth}")
    align.crop_square(align.MEAN_FACE_68, self.coverage, self.centering)  # validates both


def classify(path: str) -> str:
  """'image' or 'video' for a media file, by extension, else by trying to read it.

  Raises UserError for files that are neither.
  """
  ext = os.path.splitext(path)[1].lower()
  if ext in video.IMAGE_EXTENSIONS and ext != ".gif":
    return "image"
  if ext in video.VIDEO_EXTENSIONS:
    return "video"
  if not os.path.isfile(path):
    raise UserError(f"input not found: {path}")
  if os.path.getsize(path) == 0:
    raise UserError(f"input is empty (0 bytes): {path}")
  try:
    video.read_image(path)
    return "image"
  except UserError:
    pass
  try:
    video.probe_video(path)
    return "video"
  except UserError:
    raise UserError(f"not an image or video file: {path}") from None


def list_sources(path: str) -> tuple[list[tuple[str, str]], list[str]]:
  """(sources [(path, kind)], skip messages) for a file or a folder (not recursive)."""
  if not os.path.exists(path):
    raise UserError(f"input not found: {path}")
  if os.path.isfile(path):
    return [(path, classify(path))], []
  sources, skipped = [], []
  for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    if name.startswith(".") or not os.path.isfile(full):
      continue
    try:
      sources.append((full, classify(full)))
    except UserError as e:
      skipped.append(f"skip: {e}")
  return sources, skipped


def sampled_frames(path: str, kind: str, opts) -> Iterator[tuple[int, np.ndarray]]:
  """(frame index, uint8 frame) for the sampled frames of a source ("image" or a video);
  `opts` has `max_frames` (None = all) and `every_n_frames`."""
  if kind == "image":
    yield 0, video.read_image(path)
    return
  for i, frame in enumerate(video.iter_video(path)):
    if opts.max_frames is not None and i >= opts.max_frames:
      return
    if i % opts.every_n_frames == 0:
      yield i, frame


def _smooth_tracks(detections: dict[int, list[dict]], opts: ExtractOptions, fps: float):
  """Smooths the landmarks of each track over runs of consecutive sampled frames (in place)."""
  if opts.smooth <= 1:
    return
  runs: dict[int, list[list[dict]]] = {}
  for i in sorted(detections):
    for d in detections[i]:
      segs = runs.setdefault(d["track"], [])
      if segs and i - segs[-1][-1]["frame"] == opts.every_n_frames:
        segs[-1].append(d)
      else:
        segs.append([d])
  for segs in runs.values():
    for seg in segs:
      lms = np.stack([d["face"].landmarks for d in seg])
      if opts.smooth_filter == "euro":
        smooth = track.smooth_euro(lms, rate=fps / opts.every_n_frames,
                                   min_cutoff=max(0.05, 2.0 / max(opts.smooth, 1)))
      else:
        smooth = track.smooth_average(lms, opts.smooth)
      for d, lm in zip(seg, smooth):
        d["landmarks"] = lm


def detect_source(path: str, kind: str, opts: ExtractOptions, backend: str,
                  progress: Optional[Callable] = None, image: Optional[np.ndarray] = None
                  ) -> tuple[dict[int, list[dict]], list[int], dict]:
  """Pass 1: faces kept per sampled frame -> ({frame: [detection]}, no-face frames, info).

  A detection is {"frame", "face" (detect.Face), "track", "index", "landmarks"}.
  `image`: the already decoded still image of an image source.
  """
  tracker = track.IdentityTracker()
  detections: dict[int, list[dict]] = {}
  no_face: list[int] = []
  info = {"kind": kind, "frames_sampled": 0, "width": 0, "height": 0}
  max_side = detect.IMAGE_MAX_SIDE if kind == "image" else detect.DETECT_MAX_SIDE
  detector = detect.FrameDetector(backend, max_side, verify=opts.verify)
  frames = [(0, image)] if image is not None else sampled_frames(path, kind, opts)
  for i, frame in frames:
    info["frames_sampled"] += 1
    info["height"], info["width"] = frame.shape[:2]
    faces = detector(frame)
    if opts.faces == "main" and faces:
      faces = [faces[track.main_face_index(faces, frame.shape[:2])]]
      ids = [0]
    elif opts.faces == "track":
      ids = tracker.update(i, faces, lambda f, fr=frame: detect.face_embedding(fr, f))
    else:
      ids = tracker.update(i, faces)
    if not faces:
      no_face.append(i)
    detections[i] = [{"frame": i, "face": f, "track": t, "index": j, "landmarks": f.landmarks}
                     for j, (f, t) in enumerate(zip(faces, ids))]
    if progress is not None:
      progress(1)
  if info["frames_sampled"] == 0:
    raise UserError(f"no frames to read in {path}")
  return detections, no_face, info


def source_stem(path: str, unique: bool = True) -> str:
  """Crop-name prefix of a source: its file name without extension (with it, '.' -> '_',
  when `unique` is False because another source in the folder has the same stem)."""
  name = os.path.basename(path)
  return os.path.splitext(name)[0] if unique else name.replace(".", "_")


def crop_source(path: str, kind: str, opts: ExtractOptions, detections: dict[int, list[dict]],
                out_dir: str, image: Optional[np.ndarray] = None,
                stem: Optional[str] = None) -> list[dict]:
  """Pass 2: aligned crops for the detections; writes PNGs, returns face records."""
  stem = stem or source_stem(path)
  records = []
  frames = [(0, image)] if image is not None else sampled_frames(path, kind, opts)
  try:
    for i, frame in frames:
      for d in detections.get(i, []):
        records.append(_crop_one(frame, d, i, stem, path, opts, out_dir))
  except BaseException:
    for rec in records:  # a source that fails half-way leaves no crops behind
      try:
        os.remove(os.path.join(out_dir, rec["file"]))
      except OSError:
        pass
    raise
  return records


def _crop_one(frame, d, i, stem, path, opts, out_dir) -> dict:
  lm = np.asarray(d["landmarks"], np.float64)
  m = align.alignment_matrix(lm, opts.size, opts.coverage, opts.centering)
  face_id = d["track"] if opts.faces == "track" else d["index"]
  name = f"{stem}_{i:06d}_{face_id}.png"
  video.write_image(os.path.join(out_dir, name), align.crop(frame, m, opts.size))
  rec = {"file": name, "source": os.path.abspath(path), "frame": i, "face": int(face_id),
         "score": round(float(d["face"].score), 4),
         "box": [round(float(v), 2) for v in d["face"].box],
         "landmarks_frame": np.round(lm, 3).tolist(),
         "matrix": np.round(m, 8).tolist(), "size": opts.size,
         "landmarks": np.round(align.pixels_to_unit(align.transform_points(m, lm), opts.size)
                               .astype(np.float64), 6).tolist()}
  if opts.faces == "track":
    rec["track"] = int(d["track"])
  return rec


def extract_source(path: str, kind: str, out_dir: str, opts: ExtractOptions, backend: str,
                   progress: Optional[Callable] = None, stem: Optional[str] = None) -> dict:
  """Both passes for one source: {"faces": [...], "no_face": [...], "source": info}."""
  image = video.read_image(path) if kind == "image" else None
  if image is not None and min(image.shape[:2]) < 16:
    raise UserError(f"image too small for face detection ({image.shape[1]}x{image.shape[0]}): "
                    f"{path}")
  detections, no_face, info = detect_source(path, kind, opts, backend, progress, image)
  fps = 0.0
  if kind == "video":
    fps = video.probe_video(path).fps if (opts.smooth > 1 and opts.smooth_filter == "euro") else 0.0
  _smooth_tracks(detections, opts, fps or 25.0)
  faces = crop_source(path, kind, opts, detections, out_dir, image, stem)
  info.update(path=os.path.abspath(path), faces=len(faces),
              frames_with_face=sum(1 for v in detections.values() if v))
  return {"faces": faces, "no_face": [{"source": os.path.abspath(path), "frame": i}
                                      for i in no_face], "source": info}
