"""Swap the faces of a whole video with a trained model and paste them back.

`swap_video_from_run(workdir, video, output, options)` is the library behind
`deepjax swap --video`; `swap_video(swapper, ...)` does the work with a loaded model.
The video is streamed in chunks of `batch` frames (memory stays bounded for long
clips). For each chunk:

1. every frame's faces are found (`faces.detect.FrameDetector`, the same detector
   as `deepjax.extract`); the main face (or every face with `faces="all"`) is kept
   and its landmarks optionally smoothed over time (1-euro filter, causal);
2. each face is aligned and cut at the model's size with the coverage and
   centering the training crops were made with (read from the `settings` of the
   training folders' `alignments.json` when the run's config names them, else
   `deepjax.extract`'s defaults; the options override both);
3. all the chunk's crops go through the model in one batched call (`Swapper`);
4. each swapped crop is pasted back with the inverse transform
   (`faces.paste.paste_face`): landmark mask (convex hull raised over the forehead,
   eroded by `erode`, feathered by `blur`) or, for models that predict one, the
   learned mask (eroded and feathered the same way); colour matching ("none",
   "mean_std" in Lab, "histogram"); "alpha" or "seamless" (Poisson) blend.

Frames without a face pass through unchanged. The output has the input's frame
count, size and fps, and the input's audio stream, cut to the video's length
(`data.video.write_video`, atomic: a failed run leaves no output file). A video in which
no frame has a face is an error (nothing was swapped; no output is written).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from absl import logging

from deepjax.data import video
from deepjax.errors import UserError
from deepjax.faces import detect, paste, track
from deepjax.faces import mask as mask_lib
from deepjax.ops import align

FACE_MODES = ("main", "all")
OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov")
DEFAULT_COVERAGE, DEFAULT_CENTERING = 0.75, "face"  # as deepjax.extract


@dataclasses.dataclass
class SwapOptions:
  """How faces are found, cut, swapped and pasted back (`deepjax swap`'s options).

  erode / blur: mask erosion and feather sigma in *crop* pixels (None = size/32 and
  size/16). coverage / centering: None = as the training crops (see module doc).
  batch: frames per chunk (and faces per model call). max_frames: only the first N.
  """
  direction: str = "a2b"
  color: str = "mean_std"
  blend: str = "alpha"
  erode: Optional[float] = None
  blur: Optional[float] = None
  forehead: float = 0.2
  detector: str = "auto"
  faces: str = "main"
  smooth: int = 0
  batch: int = 16
  coverage: Optional[float] = None
  centering: Optional[str] = None
  max_frames: Optional[int] = None
  verify: bool = True

  def check(self) -> None:
    """UserError for any impossible option."""
    if self.direction not in ("a2b", "b2a"):
      raise UserError(f"swap direction must be a2b or b2a, not {self.direction!r}")
    if self.color not in paste.COLOR_MODES:
      raise UserError(f"colour mode must be one of {', '.join(paste.COLOR_MODES)}, "
                      f"not {self.color!r}")
    if self.blend not in paste.BLEND_MODES:
      raise UserError(f"blend mode must be one of {', '.join(paste.BLEND_MODES)}, "
                      f"not {self.blend!r}")
    if self.faces not in FACE_MODES:
      raise UserError(f"faces mode must be one of {', '.join(FACE_MODES)}, not {self.faces!r}")
    for name in ("erode", "blur"):
      v = getattr(self, name)
      if v is not None and (not np.isfinite(v) or v < 0):
        raise UserError(f"mask {name} must be >= 0 (crop pixels), got {v}")
    if not 0.0 <= self.forehead <= 2.0:
      raise UserError(f"mask forehead reach must be in [0, 2], got {self.forehead}")
    if self.smooth < 0:
      raise UserError(f"landmark smoothing must be >= 0, got {self.smooth}")
    if not 1 <= self.batch <= 1024:
      raise UserError(f"batch (frames per chunk) must be in [1, 1024], got {self.batch}")
    if self.max_frames is not None and self.max_frames < 1:
      raise UserError(f"max_frames must be >= 1, got {self.max_frames}")
    detect.resolve_backend(self.detector)  # validates the name
    align.crop_square(align.MEAN_FACE_68, self.coverage or DEFAULT_COVERAGE,
                      self.centering or DEFAULT_CENTERING)  # validates both


def training_crop_settings(config) -> tuple[float, str, str]:
  """(coverage, centering, where from) of the crops a swap model was trained on.

  Reads `settings` from `alignments.json` in the run's `data.a` folder (then
  `data.b`) when the config trained on face folders; else extract's defaults.
  """
  data = config.get("data", {}) if config is not None else {}
  if data.get("source", "") == "folders":
    for side in ("a", "b"):
      path = os.path.join(str(data.get(side, "") or ""), "alignments.json")
      try:
        with open(path, encoding="utf-8") as f:
          settings = json.load(f).get("settings", {})
        return (float(settings.get("coverage", DEFAULT_COVERAGE)),
                str(settings.get("centering", DEFAULT_CENTERING)), path)
      except (OSError, ValueError, AttributeError, TypeError):
        continue
  return DEFAULT_COVERAGE, DEFAULT_CENTERING, "extract defaults"


class FaceLocator:
  """Per-frame face finding for a video: detection, face choice, landmark smoothing.

  `__call__(frame) -> list of (68, 2) float64 landmark arrays` in frame pixels,
  main face first. With `smooth > 1`, the main face's landmarks run through a
  causal 1-euro filter that restarts when the face is lost or jumps (box IoU < 0.3).
  """

  def __init__(self, backend: str, faces: str = "main", smooth: int = 0, fps: float = 25.0,
               verify: bool = True):
    self.detector = detect.FrameDetector(backend, verify=verify)
    self.faces, self.smooth, self.fps = faces, smooth, fps
    self._filter: Optional[track.OneEuroFilter] = None
    self._box = None

  def __call__(self, frame: np.ndarray) -> list[np.ndarray]:
    found = self.detector(frame)
    if not found:
      self._filter, self._box = None, None
      return []
    main = track.main_face_index(found, frame.shape[:2])
    order = [main] + [i for i in range(len(found)) if i != main]
    faces = [found[order[0]]] if self.faces == "main" else [found[i] for i in order]
    lms = [np.asarray(f.landmarks, np.float64) for f in faces]
    if self.smooth > 1:
      box = faces[0].box
      if self._filter is None or self._box is None or track.iou(box, self._box) < 0.3:
        self._filter = track.OneEuroFilter(self.fps, min_cutoff=max(0.05, 2.0 / self.smooth))
      self._box = box
      lms[0] = np.asarray(self._filter(lms[0]), np.float64)
    return lms


def _prepare_mask(learned: np.ndarray, erode: float, blur: float) -> np.ndarray:
  """Learned (S, S[, 1]) mask -> eroded, feathered (S, S) float32."""
  s = learned.shape[0]
  hard = mask_lib.grow_mask(np.asarray(learned, np.float32).reshape(s, s), -erode)
  return mask_lib.blur_mask(hard, blur)


def swap_chunk(frames: np.ndarray, locate: Callable[[np.ndarray], list], swapper,
               opts: SwapOptions, coverage: float, centering: str,
               learned_mask: bool = False,
               stats: Optional[dict] = None) -> tuple[list[np.ndarray], int]:
  """Swaps every face of a block of frames in one batched model call.

  Args:
    frames: uint8 (N, H, W, 3) consecutive frames.
    locate: frame -> list of (68, 2) landmark arrays in frame pixels (`FaceLocator`).
    swapper: `deepjax.infer.swap.Swapper`-like: `.size`, `(faces (M,S,S,3) float32,
      direction) -> (swapped (M,S,S,3) float32 [0,1], mask (M,S,S,1) float32)`.
    opts: the paste-back options (colour, blend, erode, blur, forehead, batch).
    learned_mask: use the model's mask instead of the landmark mask.
    stats: with learned_mask, "faces" and "empty_masks" (faces whose model mask was empty,
      pasted back unchanged) are added to it.
  Returns:
    (list of N uint8 (H, W, 3) frames, number of frames with at least one face).
  """
  size = int(swapper.size)
  erode = size / 32 if opts.erode is None else float(opts.erode)
  blur = size / 16 if opts.blur is None else float(opts.blur)
  jobs, crops = [], []  # jobs: (frame index, matrix, crop landmarks in [-1, 1])
  for i, frame in enumerate(frames):
    for lm in locate(frame):
      m = align.alignment_matrix(lm, size, coverage, centering)
      crops.append(align.crop(frame, m, size))
      jobs.append((i, m, align.pixels_to_unit(align.transform_points(m, lm), size)))
  out = [np.array(f) for f in frames]
  if not jobs:
    return out, 0
  batch = max(1, int(opts.batch))
  n = len(crops)
  padded = -(-n // batch) * batch  # one compiled shape for every chunk
  x = np.zeros((padded, size, size, 3), np.float32)
  x[:n] = np.stack(crops).astype(np.float32) / 255.0
  swapped, masks = swapper(x, opts.direction)
  if learned_mask and stats is not None:
    stats["faces"] = stats.get("faces", 0) + n
    stats["empty_masks"] = stats.get("empty_masks", 0) + mask_lib.count_empty_masks(masks[:n])
  for k, (i, m, lm_unit) in enumerate(jobs):
    mask = _prepare_mask(masks[k], erode, blur) if learned_mask else None
    out[i] = paste.paste_face(out[i], np.clip(swapped[k], 0.0, 1.0), m, lm_unit, mask=mask,
                              color_mode=opts.color, blend=opts.blend, forehead=opts.forehead,
                              erode=erode, feather=blur)
  return out, len({j[0] for j in jobs})


def swap_frames(chunks: Iterable[np.ndarray], swapper, opts: SwapOptions, locate,
                coverage: float, centering: str, learned_mask: bool = False,
                stats: Optional[dict] = None, progress=None) -> Iterator[np.ndarray]:
  """Lazily swaps a stream of uint8 (N, H, W, 3) chunks; yields uint8 (H, W, 3) frames.

  `stats` (updated in place): "frames", "with_face" (and with learned_mask "faces",
  "empty_masks": `swap_chunk`). `progress(n)` after each chunk.
  """
  stats = {} if stats is None else stats
  stats.setdefault("frames", 0)
  stats.setdefault("with_face", 0)
  for chunk in chunks:
    out, hits = swap_chunk(chunk, locate, swapper, opts, coverage, centering, learned_mask,
                           stats)
    stats["frames"] += len(out)
    stats["with_face"] += hits
    if progress is not None:
      progress(len(out))
    yield from out


def _limited(chunks: Iterator[np.ndarray], max_frames: Optional[int]) -> Iterator[np.ndarray]:
  left = max_frames
  for c in chunks:
    if left is not None:
      if left <= 0:
        return
      c = c[:left]
      left -= len(c)
    yield c


def check_output(output: str, video_path: str) -> str:
  """UserError unless `output` is a writable .mp4 path other than the input."""
  if not output:
    raise UserError("no output video path given")
  ext = os.path.splitext(output)[1].lower()
  if ext not in OUTPUT_EXTENSIONS:
    raise UserError(f"output video name must end in {', '.join(OUTPUT_EXTENSIONS)}: {output}")
  if os.path.isdir(output):
    raise UserError(f"output video path is a folder: {output}")
  if os.path.exists(video_path) and os.path.exists(output) and \
      os.path.samefile(output, video_path):
    raise UserError(f"output would overwrite the input video: {output}")
  parent = os.path.dirname(os.path.abspath(output))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UserError(f"cannot create the output folder ({parent} is a file): {output}")
  if not os.access(parent, os.W_OK):
    raise UserError(f"output folder is not writable: {parent}")
  return output


def check_swap_workdir(workdir: str):
  """The saved config of a face-swap run; UserError for missing or non-swap runs."""
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  if not workdir:
    raise UserError("no run folder given (the run folder of a trained swap model)")
  if not os.path.isdir(workdir):
    raise UserError(f"run folder not found: {workdir}")
  config = loading.read_config(workdir)
  task = config.get("task", None)
  if task not in ("ae", "vae", "gan"):
    raise UserError(f"{workdir} holds a {task!r} model, not a face-swap model "
                    "(train one with configs/faceswap_ae.py)")
  return config


def swap_video(swapper, video_path: str, output: str, opts: SwapOptions,
               progress: bool = True, log: Callable[[str], None] = logging.info,
               provenance=None) -> dict:
  """Swaps the faces of `video_path` into `output` (mp4, audio of the input kept).

  Args:
    swapper: a loaded `Swapper` (or anything with `.size`, `.config` optional and
      `__call__(faces, direction) -> (rgb, mask)`).
    video_path: input video.
    output: output .mp4 (written atomically; folders created).
    opts: `SwapOptions` (checked here).
    progress: show a tqdm bar on stderr (when it is a terminal).
    log: where informational lines go.
    provenance: a `deepjax.provenance.Provenance` (watermarks the frames, signs the
      file), or None for no marks.
  Returns:
    {"frames", "with_face", "seconds", "frames_per_s", "fps", "width", "height",
     "audio", "coverage", "centering", "output", "empty_masks" (faces pasted back unchanged
     because the model's learned mask was empty; warned of in the log)}.
  Raises:
    UserError: bad options, unreadable video, no face in any frame (no output then).
  """
  opts.check()
  check_output(output, video_path)
  info = video.probe_video(video_path)
  config = getattr(swapper, "config", None)
  coverage, centering, source = training_crop_settings(config)
  coverage = opts.coverage or coverage
  centering = opts.centering or centering
  learned = bool(config is not None and config.get("model", {}).get("mask", False))
  backend, why = detect.resolve_backend(opts.detector)
  log(f"detector: {backend} ({why}); crops {swapper.size} px, coverage {coverage}, "
      f"centering {centering} ({source}); mask: {'learned' if learned else 'landmarks'}")
  total = info.num_frames if opts.max_frames is None else min(info.num_frames, opts.max_frames)
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm(total=total, desc=os.path.basename(video_path), unit="frame", leave=False,
               disable=None, file=sys.stderr)
  locate = FaceLocator(backend, opts.faces, opts.smooth, info.fps, opts.verify)
  stats: dict = {}
  chunks = _limited(video.iter_video(video_path, chunk=opts.batch), opts.max_frames)
  frames = swap_frames(chunks, swapper, opts, locate, coverage, centering, learned, stats,
                       bar.update if bar is not None else None)

  if provenance is not None:
    frames = provenance.mark_stream(frames, opts.batch)

  def guarded():
    yield from frames
    if stats["with_face"] == 0:
      raise UserError(f"no face found in any of the {stats['frames']} frames of {video_path}; "
                      "nothing to swap, no output written")

  start = time.perf_counter()
  try:
    n = video.write_video(output, guarded(), info.fps,
                          audio_from=video_path if info.has_audio else None)
  finally:
    if bar is not None:
      bar.close()
  if provenance is not None:
    provenance.sign(output, size=(info.width, info.height))
  if stats.get("empty_masks"):
    log(mask_lib.empty_mask_warning(stats["empty_masks"], stats["faces"]))
  seconds = time.perf_counter() - start
  return {"frames": n, "with_face": stats["with_face"], "seconds": round(seconds, 2),
          "frames_per_s": round(n / max(seconds, 1e-9), 2), "fps": info.fps,
          "width": info.width, "height": info.height, "audio": info.has_audio,
          "coverage": coverage, "centering": centering, "output": os.path.abspath(output),
          "empty_masks": stats.get("empty_masks", 0)}


def swap_video_from_run(workdir: str, video_path: str, output: str,
                        options: Optional[SwapOptions] = None,
                        log: Callable[[str], None] = logging.info, provenance=None) -> dict:
  """`swap_video` with the model of the run folder `workdir`: every cheap check first
  (options, output path, input video, run folder), then the model is loaded.

  Returns `swap_video`'s dict. Raises UserError as `swap_video`, and for a run folder
  that is missing or holds no face-swap model.
  """
  opts = options or SwapOptions()
  opts.check()
  check_output(output, video_path)
  video.check_video(video_path)
  check_swap_workdir(workdir)
  from deepjax.infer.swap import Swapper  # pylint: disable=import-outside-toplevel
  swapper = Swapper(workdir, opts.batch)
  return swap_video(swapper, video_path, output, opts, log=log, provenance=provenance)
