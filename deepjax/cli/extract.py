"""deepjax extract --input=VIDEO_OR_FOLDER_OR_IMAGE --output=DIR [options]

Finds faces, aligns them to a mean face and writes square crops plus
`DIR/alignments.json` (see deepjax/faces/extract.py for the record format).

  --for=swap (default): aligned crops `DIR/<source>_<frame>_<face>.png` of the main
      face (default), of `--all_faces`, or of `--track`ed identities, with landmark
      smoothing `--smooth=N` (moving average of N sampled frames, or the 1-euro
      filter with `--smooth_filter=euro`).
  --for=animation: one fixed square crop per source that follows the face over the
      clip (first-order-model style): `DIR/<source>.mp4` (audio kept) for a video,
      `DIR/<source>.png` for a photo.

Per-file problems in a folder are reported as one `skip:` line each; the program
exits with status 2 and one `error:` line when nothing could be extracted at all.
"""
import json
import os
import sys
import time

from absl import flags

from deepjax.cli import program

_INPUT = flags.DEFINE_string("input", None, "Video, image, or folder of videos/images.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder.")
_SIZE = flags.DEFINE_integer("size", None, "Crop side in pixels (default 64; 256 for "
                             "--for=animation).")
_COVERAGE = flags.DEFINE_float("coverage", 0.75, "Fraction (0, 1] of the centring's square "
                               "kept (smaller = tighter on the face).")
_CENTERING = flags.DEFINE_enum("centering", "face", ["face", "head", "legacy"], "Crop centring.")
_DETECTOR = flags.DEFINE_enum("detector", "auto", ["auto", "dlib", "dlib_cnn", "face_alignment"],
                              "Face detector / landmark backend.")
_ALL = flags.DEFINE_boolean("all_faces", False, "Extract every face, not just the main one.")
_TRACK = flags.DEFINE_boolean("track", False, "Extract every face with identity track ids "
                              "(file suffix = track id).")
_SMOOTH = flags.DEFINE_integer("smooth", 0, "Temporal landmark smoothing window (frames); "
                               "0/1 = off.")
_SMOOTH_FILTER = flags.DEFINE_enum("smooth_filter", "average", ["average", "euro"],
                                   "Smoothing filter.")
_EVERY = flags.DEFINE_integer("every_n_frames", 1, "Use every n-th video frame.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Read at most this many frames per video.")
_FOR = flags.DEFINE_enum("for", "swap", ["swap", "animation"], "What the crops are for.")
_SCALE = flags.DEFINE_float("animation_scale", 2.0, "--for=animation: crop side / face box side.")
_VERIFY = flags.DEFINE_boolean("verify", True, "Re-check weak HOG detections with dlib's CNN "
                               "(rejects most animal/cartoon faces).")


def _log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def _progress(desc: str):
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(desc=desc, unit="frame", leave=False, disable=None, file=sys.stderr)


def _animation_source(path, kind, out_dir, opts, backend, size, scale, bar):
  """Detects the main face over a source and writes its fixed animation crop."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.faces import extract  # pylint: disable=import-outside-toplevel
  from deepjax.faces import animation_crop as animation  # pylint: disable=import-outside-toplevel
  image = video.read_image(path) if kind == "image" else None
  dets, no_face, info = extract.detect_source(path, kind, opts, backend, bar.update, image)
  boxes = [d[0]["face"].box for d in dets.values() if d]
  if not boxes:
    raise UserError(f"no face found in {path}")
  box = animation.animation_box(np.stack(boxes), (info["height"], info["width"]), scale)
  stem = os.path.splitext(os.path.basename(path))[0]
  if kind == "image":
    name = stem + ".png"
    video.write_image(os.path.join(out_dir, name), animation.crop_resize(image, box, size))
    n, fps = 1, 0.0
  else:
    name = stem + ".mp4"
    fps = video.probe_video(path).fps
    frames = video.iter_video(path)
    if opts.max_frames:
      frames = (f for i, f in zip(range(opts.max_frames), frames))
    n = video.write_video(os.path.join(out_dir, name), animation.crop_frames(frames, box, size),
                          fps, audio_from=path)
  s = size / (box[2] - box[0])
  return {"file": name, "source": os.path.abspath(path), "box": list(box), "frames": n,
          "fps": fps, "size": size, "matrix": [[s, 0.0, -s * box[0] + 0.5 * s - 0.5],
                                               [0.0, s, -s * box[1] + 0.5 * s - 0.5]],
          "frames_with_face": len(boxes), "frames_sampled": info["frames_sampled"]}, no_face


def _check_output(out_dir: str) -> str:
  """--output, checked before anything is created: a folder, or a path one can create."""
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f"--output exists and is not a folder: {out_dir}")
  parent = os.path.abspath(out_dir)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"cannot write --output {out_dir}: {parent} is not a writable folder")
  return out_dir


def _missing_ancestor(path: str):
  """The outermost missing folder on the way to `path` (None when `path` exists)."""
  path, missing = os.path.abspath(path), None
  while not os.path.exists(path):
    missing, path = path, os.path.dirname(path)
  return missing


def _remove_empty_folders(path: str, top: str) -> None:
  """Removes `path` and its parents up to `top` while they are empty (a failed run's)."""
  path = os.path.abspath(path)
  while True:
    try:
      os.rmdir(path)
    except OSError:
      return
    if path == top:
      return
    path = os.path.dirname(path)


def _extract_all(sources, out_dir, opts, backend, size):
  """Extracts every source into `out_dir` -> (faces, no_face, source infos, clips).

  Raises UserError when nothing could be extracted at all.
  """
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.faces import extract  # pylint: disable=import-outside-toplevel
  animate = _FOR.value == "animation"
  stems = [os.path.splitext(os.path.basename(p))[0] for p, _ in sources]
  faces, no_face, infos, clips, errors = [], [], [], [], []
  for path, kind in sources:
    bar = _progress(os.path.basename(path))
    try:
      if animate:
        rec, nf = _animation_source(path, kind, out_dir, opts, backend, size, _SCALE.value, bar)
        clips.append(rec)
        no_face += [{"source": os.path.abspath(path), "frame": i} for i in nf]
        _log(f"{path}: {rec['frames_with_face']}/{rec['frames_sampled']} sampled frames with a "
             f"face -> {rec['file']}")
        continue
      stem = extract.source_stem(path, unique=stems.count(extract.source_stem(path)) == 1)
      out = extract.extract_source(path, kind, out_dir, opts, backend, bar.update, stem)
    except UserError as e:
      errors.append(str(e))
      if len(sources) > 1:
        _log(f"skip: {e}")
      continue
    finally:
      bar.close()
    faces += out["faces"]
    no_face += out["no_face"]
    infos.append(out["source"])
    info = out["source"]
    if out["faces"]:
      _log(f"{path}: {info['frames_with_face']}/{info['frames_sampled']} sampled frames with a "
           f"face, {info['faces']} crops")
    else:
      errors.append(f"no face found in {path}")
      if len(sources) > 1:
        _log(f"skip: no face found in {path}")
  if not faces and not clips:
    if len(errors) == 1:
      raise UserError(errors[0])
    raise UserError(f"no face found in any of {len(sources)} inputs under {_INPUT.value}")
  return faces, no_face, infos, clips


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.faces import detect, extract  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _INPUT.value or not _OUTPUT.value:
    raise UserError("--input and --output are required")
  if _ALL.value and _TRACK.value:
    raise UserError("--all_faces and --track are exclusive (--track extracts all faces too)")
  animate = _FOR.value == "animation"
  size = _SIZE.value or (256 if animate else 64)
  opts = extract.ExtractOptions(
      size=size, coverage=_COVERAGE.value, centering=_CENTERING.value, detector=_DETECTOR.value,
      faces="track" if _TRACK.value else ("all" if _ALL.value else "main"),
      smooth=_SMOOTH.value, smooth_filter=_SMOOTH_FILTER.value, every_n_frames=_EVERY.value,
      max_frames=_MAX_FRAMES.value, verify=_VERIFY.value)
  if animate:
    opts.faces = "main"
  opts.check()
  if not 1.0 <= _SCALE.value <= 6.0:
    raise UserError(f"--animation_scale must be in [1, 6], got {_SCALE.value}")
  sources, skipped = extract.list_sources(_INPUT.value)
  for msg in skipped:
    _log(msg)
  if not sources:
    raise UserError(f"no images or videos in {_INPUT.value}")
  out_dir = _check_output(_OUTPUT.value)
  backend, why = detect.resolve_backend(opts.detector)
  _log(f"detector: {backend} ({why})")
  created = _missing_ancestor(out_dir)
  start = time.time()
  try:  # the folder appears with the first file written into it
    faces, no_face, infos, clips = _extract_all(sources, out_dir, opts, backend, size)
  except BaseException:
    if created:
      _remove_empty_folders(out_dir, created)
    raise
  doc = {"version": 1, "settings": {
      "for": _FOR.value, "size": size, "coverage": opts.coverage, "centering": opts.centering,
      "detector": backend, "faces": opts.faces, "smooth": opts.smooth,
      "smooth_filter": opts.smooth_filter, "every_n_frames": opts.every_n_frames,
      "max_frames": opts.max_frames},
      "sources": infos, "faces": faces, "no_face": no_face}
  if animate:
    doc["animation"] = clips
  write_text_atomic(os.path.join(out_dir, "alignments.json"), json.dumps(doc))
  n_sampled = sum(i["frames_sampled"] for i in infos) or sum(c["frames_sampled"] for c in clips)
  _log(f"wrote {len(faces) if not animate else len(clips)} "
       f"{'crops' if not animate else 'clips'} and alignments.json to {out_dir} "
       f"({n_sampled} frames in {time.time() - start:.1f} s)")


def run(argv=None):
  program.run(main, argv)
