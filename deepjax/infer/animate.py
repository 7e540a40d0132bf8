"""Animate a photo with the motion of a driving video (first-order motion model).

    from deepjax.infer import animate as animation
    info = animation.animate_file("runs/fomm", "photo.jpg", "driving.mp4", "out.mp4")

Inputs of any size and aspect are made square at the model's size (`config.data.size`):
- crop="face" (default): one fixed square around the face, as `deepjax extract
  --for=animation` makes training crops (`deepjax.faces.animation_crop.animation_box`: side
  `scale` x the face box, a little above its centre, moved inside the frame). For a video
  the face boxes of every `detect_every`-th frame are combined, so the crop does not
  swim; a full scene is thereby cropped to the face automatically. No face = UserError.
- crop="center": the largest centred square, resized (no detection).
- crop="none": the whole frame resized to a square (the aspect is not kept).
The output is the square animation at the model's size (nothing is pasted back).

Motion: keypoints of the source and of every driving frame come from the detector in
fixed-size batches inside jit; with `relative=True` (default) the driving keypoints move
the source's keypoints by their displacement from an initial driving frame
(`ops.keypoints.relative_motion`; `adapt_scale` scales it by the ratio of the keypoint
hulls); with `relative=False` the driving keypoints are used as they are (absolute).
The initial frame is frame 0, or with `find_best_frame` the sampled driving frame whose
normalised dlib landmarks (centred, divided by sqrt of their hull area) are closest to the
source's - as the reference, where animating forwards and backwards from that frame is
the same as using it as the initial frame for every frame.
"""
import sys
from typing import Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax.batching import map_batches
from deepjax.errors import UserError

CROPS = ("face", "center", "none")
MAX_PIXELS = 50_000_000  # larger stills are refused (memory of detection and resizing)


# ----------------------------------------------------------------------------- model


def load_motion_model(workdir: str):
  """-> (FOMM, variables {"kp_detector"|"generator": {"params", "batch_stats"}}, config).

  The newest checkpoint of a `task="motion"` run or a converted one (`deepjax.load`).
  """
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  if loading.read_config(workdir).task != "motion":
    raise UserError(f"{workdir} does not hold a motion model (train one with the config "
                    "configs/fomm_vox256.py:tiny, or convert one with deepjax convert)")
  fomm, variables, config = loading.load(workdir)
  return fomm, jax.tree.map(jnp.asarray, variables), config


# ----------------------------------------------------------------------------- inputs


def _square_box(h: int, w: int) -> Tuple[int, int, int, int]:
  side = min(h, w)
  x0, y0 = (w - side) // 2, (h - side) // 2
  return x0, y0, x0 + side, y0 + side


def _resize(frame: np.ndarray, box, size: int, crop: str) -> np.ndarray:
  from deepjax.faces import animation_crop as fa  # pylint: disable=import-outside-toplevel
  if crop == "none":
    box = (0, 0, frame.shape[1], frame.shape[0])
  return fa.crop_resize(frame, box, size)


def _detections(path: str, kind: str, detect_every: int, max_frames: Optional[int],
                image=None):
  """Main face per sampled frame: ({frame: Face}, (H, W))."""
  from deepjax.faces import detect, extract  # pylint: disable=import-outside-toplevel
  opts = extract.ExtractOptions(every_n_frames=detect_every, max_frames=max_frames, faces="main")
  backend, _ = detect.resolve_backend("auto")
  dets, _, info = extract.detect_source(path, kind, opts, backend, None, image)
  faces = {i: d[0]["face"] for i, d in dets.items() if d}
  return faces, (info["height"], info["width"])


def prepare_source(path: str, size: int, crop: str = "face", scale: float = 2.0
                   ) -> Tuple[np.ndarray, dict]:
  """A photo -> (uint8 (size, size, 3), info {"box", "landmarks" (68, 2) frame px or None}).

  Grayscale, RGBA, palette and 16-bit images are converted to RGB (video.read_image).
  """
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.faces import animation_crop as fa  # pylint: disable=import-outside-toplevel
  _check_crop(crop)
  image = video.read_image(path)
  h, w = image.shape[:2]
  if h * w > MAX_PIXELS:
    raise UserError(f"image too large ({w}x{h}; at most {MAX_PIXELS // 1_000_000} megapixels):"
                    f" {path}")
  landmarks = None
  if crop == "face":
    faces, _ = _detections(path, "image", 1, None, image)
    if not faces:
      raise UserError(f"no face found in {path} (crop mode 'center' animates it anyway)")
    face = faces[min(faces)]
    box = fa.animation_box(face.box[None], (h, w), scale)
    landmarks = face.landmarks
  else:
    box = _square_box(h, w)
  return _resize(image, box, size, crop), {"box": [int(v) for v in box], "landmarks": landmarks,
                                            "width": w, "height": h}


def prepare_driving(path: str, size: int, crop: str = "face", scale: float = 2.0,
                    detect_every: int = 10, max_frames: Optional[int] = None
                    ) -> Tuple[np.ndarray, float, dict]:
  """A video -> (uint8 (T, size, size, 3), fps, info {"box", "landmarks": {frame: (68, 2)}}).

  Raises UserError for a missing, empty or unreadable video, or (crop="face") no face.
  """
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.faces import animation_crop as fa  # pylint: disable=import-outside-toplevel
  _check_crop(crop)
  meta = video.probe_video(path)
  landmarks = {}
  if crop == "face":
    faces, (h, w) = _detections(path, "video", detect_every, max_frames)
    if not faces:
      raise UserError(f"no face found in the driving video {path} (crop mode 'center' "
                      "uses it anyway)")
    box = fa.animation_box(np.stack([f.box for f in faces.values()]), (h, w), scale)
    landmarks = {i: f.landmarks for i, f in faces.items()}
  else:
    h, w = meta.height, meta.width
    box = _square_box(h, w)
  frames = []
  for i, frame in enumerate(video.iter_video(path)):
    if max_frames is not None and i >= max_frames:
      break
    frames.append(_resize(frame, box, size, crop))
  if not frames:
    raise UserError(f"video has no frames: {path}")
  return np.stack(frames), float(meta.fps), {"box": [int(v) for v in box],
                                             "landmarks": landmarks, "has_audio": meta.has_audio}


def _check_crop(crop: str) -> None:
  if crop not in CROPS:
    raise UserError(f"crop must be one of {', '.join(CROPS)}, not {crop!r}")


# ----------------------------------------------------------------------------- best frame


def normalize_landmarks(points_Nx2: np.ndarray) -> np.ndarray:
  """Centred landmarks divided by sqrt(area of their convex hull) (the reference's)."""
  from scipy.spatial import ConvexHull  # pylint: disable=import-outside-toplevel
  p = np.asarray(points_Nx2, np.float64)
  p = p - p.mean(axis=0, keepdims=True)
  return p / np.sqrt(ConvexHull(p).volume)


def find_best_frame(source_landmarks: np.ndarray, driving_landmarks: Dict[int, np.ndarray]
                    ) -> int:
  """Index of the driving frame whose normalised landmarks are closest (sum of squares)."""
  if source_landmarks is None or not driving_landmarks:
    raise UserError("finding the best driving frame needs landmarks of the source and of "
                    "the driving frames (crop mode 'face', the default)")
  src = normalize_landmarks(source_landmarks)
  best, best_d = 0, np.inf
  for i in sorted(driving_landmarks):
    d = float(np.sum((src - normalize_landmarks(driving_landmarks[i])) ** 2))
    if d < best_d:
      best, best_d = i, d
  return best


# ----------------------------------------------------------------------------- generation


def make_animate_fn(fomm, relative: bool = True, adapt_scale: bool = False, avd: bool = False):
  """jit-able (variables, source (1,S,S,3) f32, kp_source, kp_initial, frames (B,S,S,3) f32)
  -> predictions (B, S, S, 3) f32: detect the batch's keypoints, normalise (or, with `avd`,
  the thin-plate-spline model's AVD network: driving pose on the source's identity),
  generate."""
  from deepjax.ops import keypoints as kpo  # pylint: disable=import-outside-toplevel

  def fn(variables, source, kp_source, kp_initial, frames):
    kp_driving = fomm.detect(variables, frames)
    if avd:
      return fomm.animate(variables, source, kp_source,
                          fomm.avd(variables, kp_source, kp_driving))["prediction"]
    kp_norm = kpo.relative_motion(kp_source, kp_driving, kp_initial,
                                  adapt_movement_scale=adapt_scale,
                                  use_relative_movement=relative,
                                  use_relative_jacobian=relative and "jacobian" in kp_driving)
    return fomm.animate(variables, source, kp_source, kp_norm)["prediction"]
  return fn


def animate_frames(fomm, variables, source: np.ndarray, driving: np.ndarray,
                   relative: bool = True, adapt_scale: bool = False, initial_frame: int = 0,
                   batch_size: int = 16, progress: Optional[Callable[[int], None]] = None,
                   avd: bool = False) -> np.ndarray:
  """uint8 source (S,S,3) and driving frames (T,S,S,3) -> uint8 animation (T,S,S,3).

  `avd`: motion from the model's AVD network (`make_animate_fn`; thin-plate-spline models
  with one) instead of relative or absolute keypoints.

  Frames go through one jitted function in batches of `batch_size`
  (`deepjax.batching.map_batches`: the last batch is padded, so there is one compilation);
  `progress(n)` is called after each batch.
  """
  t = len(driving)
  if t == 0:
    raise UserError("the driving video has no frames")
  if not 0 <= initial_frame < t:
    raise UserError(f"initial frame {initial_frame} outside the {t} driving frames")
  if avd and getattr(fomm, "avd_network", None) is None:
    raise UserError("this motion model has no AVD network (a thin-plate-spline config with "
                    "model.avd has one)")
  to_f = lambda x: jnp.asarray(x, jnp.float32) / 255.0  # noqa: E731
  src = to_f(source[None])
  detect = compile_options.jit(fomm.detect)
  kp_source = detect(variables, src)
  kp_initial = detect(variables, to_f(driving[initial_frame][None]))
  step = compile_options.jit(make_animate_fn(fomm, relative, adapt_scale, avd))

  def animate_batch(frames):
    pred = step(variables, src, kp_source, kp_initial, to_f(frames))
    return jnp.clip(pred * 255.0 + 0.5, 0, 255).astype(jnp.uint8)
  return map_batches(animate_batch, driving, batch_size, progress)


def check_avd(config) -> None:
  """UserError unless the run's AVD network holds trained weights: a thin-plate-spline
  model converted from a checkpoint that has `avd_network` (`deepjax train` does not train
  it; the reference trains it separately, in its train_avd.py)."""
  if config.model.get("name", "fomm") != "tpsmm" or not config.model.get("avd"):
    raise UserError("this motion model has no AVD network (a thin-plate-spline config with "
                    "model.avd has one)")
  converted = config.get("converted_from")
  if converted is None or "avd_network" in converted.get("random_parts", ()):
    raise UserError("this run's AVD network has random weights (deepjax train does not "
                    "train it; a converted reference checkpoint with avd_network has one): "
                    "use relative or absolute motion")


def animate_file(workdir: str, source_path: str, driving_path: str, output: str,
                 relative: bool = True, adapt_scale: bool = False, find_best: bool = False,
                 crop: str = "face", scale: float = 2.0, batch_size: int = 16,
                 detect_every: int = 10, max_frames: Optional[int] = None,
                 show_progress: bool = True, provenance=None, avd: bool = False) -> dict:
  """Animates `source_path` with `driving_path` into `output`: a video (mp4, m4v, mov or mkv:
  the driving fps + audio, written atomically: nothing is left on error), or else a folder
  of crops with an alignments.json, detection-ready fakes (`deepjax.infer.animate_crops`).
  `provenance`: a `deepjax.provenance.Provenance` (watermarks the frames, signs the file or
  each crop) or None. Returns a summary dict.
  """
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.infer import animate_crops  # pylint: disable=import-outside-toplevel
  as_video = animate_crops.is_video_name(output)
  if not as_video:
    animate_crops.check_output_folder(output)
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  config = loading.read_config(workdir)
  if avd:
    check_avd(config)
  size = int(config.data.size)  # inputs are checked before loading
  source, s_info = prepare_source(source_path, size, crop, scale)
  driving, fps, d_info = prepare_driving(driving_path, size, crop, scale, detect_every,
                                         max_frames)
  fomm, variables, _ = load_motion_model(workdir)
  initial = find_best_frame(s_info["landmarks"], d_info["landmarks"]) if find_best else 0
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  with tqdm(total=len(driving), unit="frame", desc="animating", file=sys.stderr,
            disable=not show_progress, leave=False) as bar:
    frames = animate_frames(fomm, variables, source, driving, relative, adapt_scale, initial,
                            batch_size, bar.update, avd)
  if not as_video:
    n = animate_crops.write_crops(np.asarray(frames), output, source_path, driving_path,
                                  str(config.model.get("name", "fomm")), provenance=provenance)
  else:
    if provenance is not None:
      frames = provenance.mark_frames(np.asarray(frames))
    n = video.write_video(output, frames, fps, audio_from=driving_path)
    if provenance is not None:
      provenance.sign(output, size=(size, size))
  return {"output": output, "frames": n, "crops": not as_video, "fps": fps, "size": size,
          "initial_frame": initial, "source_box": s_info["box"], "driving_box": d_info["box"],
          "audio": bool(d_info["has_audio"]), "relative": relative, "adapt_scale": adapt_scale,
          "avd": avd}
