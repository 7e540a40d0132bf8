"""Deepfake detection of files: find and track faces, crop them as the detector was
trained, score every face of every sampled frame, and give verdicts per face track and
per file.

`detect_path(path, workdir, ...)` takes an image, a video or a folder of them (not
recursive) and a detector run folder (configs/detect.py), or several of them as an ensemble
(comma-separated; their mean fake probability is the score); with `output` (one input file) it
also writes the annotated copy (`deepjax.infer.detect_overlay`). Faces are found and tracked
by `deepjax.faces.extract.detect_source` (tracks by identity) and cropped with
`deepjax.ops.align` at the detector's input size (the extractor's default framing,
coverage 0.75, centred on the face). A track's fake probability is the mean of its
frames' scores; a file's is the highest of its tracks'; the verdict is "fake" at
`DetectOptions.threshold` (0.5) or more.
"""
import dataclasses
import os

import jax
import numpy as np
from absl import logging

from deepjax import loading
from deepjax.data import video
from deepjax.errors import UserError
from deepjax.faces import detect as face_detect
from deepjax.faces import extract
from deepjax.infer import detect_overlay
from deepjax.ops import align

@dataclasses.dataclass
class DetectOptions:
  every_n_frames: int = 1
  max_frames: int | None = None
  batch_size: int = 64
  detector: str = "auto"
  threshold: float = 0.5  # a track / file is "fake" when its mean fake probability >= this


def _crops(path: str, kind: str, detections: dict, size: int, opts: DetectOptions):
  """(uint8 crops (N,size,size,3), [(frame, track, box)], [(2,3) frame->crop matrix])
  of every detection."""
  crops, where, matrices = [], [], []
  for i, frame in extract.sampled_frames(path, kind, opts):
    for d in detections.get(i, []):
      m = align.alignment_matrix(np.asarray(d["landmarks"], np.float64), size)
      crops.append(align.crop(frame, m, size))
      matrices.append(m)
      where.append((i, int(d["track"]), [round(float(v), 1) for v in d["face"].box]))
  return (np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8), where,
          matrices)


def _score_all(scorer, crops: np.ndarray, batch_size: int):
  """(probabilities (N,), masks (N,S,S) or None) of uint8 crops, `batch_size` at a time."""
  outs = [scorer(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]
  masks = None if outs[0][1] is None else np.concatenate([m for _, m in outs])
  return np.concatenate([p for p, _ in outs]), masks


def _verdict(p: float, threshold: float) -> str:
  return "fake" if p >= threshold else "real"


def score_source(path: str, kind: str, get_scorer, opts: DetectOptions, backend: str
                 ) -> tuple[dict, dict]:
  """(report, marks) of one file: the report holds per-track and per-face scores and the
  verdict; marks are {frame: [detect_overlay.FaceMark]} for the annotated copy.

  `get_scorer()` -> (scorer, crop size) is called only when the file has a face."""
  ext_opts = extract.ExtractOptions(faces="track", every_n_frames=opts.every_n_frames,
                                    max_frames=opts.max_frames)
  image = video.read_image(path) if kind == "image" else None
  detections, _, info = extract.detect_source(path, kind, ext_opts, backend, image=image)
  report = {"file": os.path.abspath(path), "kind": kind,
            "frames_sampled": info["frames_sampled"], "faces": [], "tracks": []}
  if not any(detections.values()):
    report.update(fake_probability=None, verdict="no face")
    return report, {}
  scorer, size = get_scorer()
  crops, where, matrices = _crops(path, kind, detections, size, opts)
  scores, masks = _score_all(scorer, crops, opts.batch_size)
  marks: dict = {}
  for n, ((f, _, b), s, m) in enumerate(zip(where, scores, matrices)):
    marks.setdefault(f, []).append(detect_overlay.FaceMark(
        b, float(s), None if masks is None else masks[n], m))
  report["faces"] = [{"frame": f, "track": t, "box": b, "fake_probability": round(float(s), 4)}
                     for (f, t, b), s in zip(where, scores)]
  for t in sorted({t for _, t, _ in where}):
    s = np.array([x for (_, tt, _), x in zip(where, scores) if tt == t])
    report["tracks"].append({"track": t, "frames": int(s.size),
                             "fake_probability": round(float(s.mean()), 4),
                             "verdict": _verdict(float(s.mean()), opts.threshold)})
  p = max(tr["fake_probability"] for tr in report["tracks"])
  report.update(fake_probability=p, verdict=_verdict(p, opts.threshold))
  return report, marks


def load_scorer(workdir):
  """(scorer, crop size S) of a detector run folder, or of an ensemble of them (a sequence
  or a comma-separated string, `deepjax.loading.ensemble_members`). The scorer maps uint8
  (N,S,S,3) crops to (fake probabilities float32 (N,), predicted manipulation masks float32
  (N,S,S) in [0,1], or None without a mask head); an ensemble gives the members' mean
  probability and the mean mask of the members that have a mask head."""
  names = loading.ensemble_members(workdir)
  scorers = [_load_one(name) for name in names]
  size = scorers[0][1]
  for name, (_, other) in zip(names, scorers):
    if other != size:
      raise UserError(f"ensemble members differ in crop size: {size} px and {other} px ({name})")
  if len(scorers) == 1:
    return scorers[0]

  def scorer(crops):
    outs = [s(crops) for s, _ in scorers]
    masks = [m for _, m in outs if m is not None]
    return (np.mean([p for p, _ in outs], axis=0).astype(np.float32),
            np.mean(masks, axis=0).astype(np.float32) if masks else None)
  return scorer, size


def _load_one(workdir: str):
  """`load_scorer` of one run folder."""
  model, params, config = loading.load(workdir)
  if config.get("task") != "detect":
    raise UserError(f"{workdir} is a {config.get('task')!r} run, not a detector (task 'detect')")
  size = int(config.data.size)

  def apply(p, x):
    logits, mask_logits = model.apply({"params": p}, x / 255.0)
    if mask_logits is None:
      return jax.nn.sigmoid(logits), None
    masks = jax.image.resize(jax.nn.sigmoid(mask_logits), (x.shape[0], size, size, 1),
                             "linear")
    return jax.nn.sigmoid(logits), masks[..., 0]
  jitted = jax.jit(apply)

  def scorer(crops):
    probs, masks = jitted(params, crops.astype(np.float32))
    return np.asarray(probs), None if masks is None else np.asarray(masks)
  return scorer, size


def detect_path(path: str, workdir: str, opts: DetectOptions | None = None,
                progress=None, output: str | None = None) -> dict:
  """{"files": [per-file reports], "skipped": [messages]} for an image, video or folder.

  With `output` (only for a single image or video): also writes the annotated copy there
  when a face was found (`detect_overlay.write_annotated`; nothing is written otherwise).
  Raises UserError for a missing path, an empty folder, `output` with a folder or a bad
  output name, or when no file could be read (one file: its own error, e.g. a corrupt
  video)."""
  opts = opts or DetectOptions()
  if opts.every_n_frames < 1 or opts.batch_size < 1:
    raise UserError("every_n_frames and batch_size must be >= 1")
  if not 0.0 <= opts.threshold <= 1.0:
    raise UserError(f"the threshold is a probability in [0, 1], got {opts.threshold}")
  sources, skipped = extract.list_sources(path)
  if not sources:
    raise UserError(f"no images or videos in {path}")
  if output is not None:
    if os.path.isdir(path):
      raise UserError(f"an annotated copy is made of one image or video, not of a folder: {path}")
    detect_overlay.check_output(output, path, sources[0][1])
  loaded = []

  def get_scorer():  # the detector loads when the first face needs a score
    if not loaded:
      loaded.append(load_scorer(workdir))
    return loaded[0]
  backend, _ = face_detect.resolve_backend(opts.detector)
  files, errors = [], []
  for src, kind in sources:
    try:
      report, marks = score_source(src, kind, get_scorer, opts, backend)
      files.append(report)
      if output is not None and marks:
        detect_overlay.write_annotated(src, kind, marks, output, opts.max_frames)
        report["output"] = os.path.abspath(output)
    except UserError as e:
      errors.append(str(e))
      skipped.append(f"skip: {e}")
      logging.warning("skipped %s: %s", src, e)
    if progress is not None:
      progress(src)
  if not files:
    raise UserError(errors[0] if len(errors) == 1 else
                    f"none of the {len(sources)} files under {path} could be read")
  return {"files": files, "skipped": skipped, "threshold": opts.threshold}
