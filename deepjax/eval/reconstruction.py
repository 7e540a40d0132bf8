"""Reconstruction metrics of a first-order motion model (the reference's protocol).

`evaluate_reconstruction(workdir, videos=None)`: for every held-out video, the source is
its first frame and every frame is reconstructed from it with *absolute* keypoints (the
reference's `reconstruction.py`: kp_source from frame 0, kp_driving from frame t, no
relative motion). Metrics (means over frames, frames pooled over videos):
- l1: mean |prediction - frame| on [0, 1] images (all frames);
- akd: average keypoint distance, mean absolute difference (pixels at the model's size)
  of dlib's 68 landmarks found in the frame and in the prediction (frames where both
  have a face; landmarks are found on copies upscaled to `detect_size` px);
- aed: average Euclidean distance of dlib's 128-d identity embeddings
  (deepjax.faces.detect.face_embedding) of the frame and the prediction (same frames);
- mkr: missing keypoint rate, the fraction of frames with a face in the frame but none
  in the prediction;
- l1_source_unchanged: the L1 of the first frame against every frame (a baseline).
Landmark metrics use every `landmark_every`-th frame (dlib is slow on CPU).

`cross_identity_error(fomm, variables, size)`: animation of synthetic faces with exact
ground truth: identity X (source = X in Y's first pose) driven by identity Y's clip,
against `render(X, motion_Y[t])`, with relative motion; L1 and PSNR next to the
"source unchanged" baseline.
"""
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np
from PIL import Image

from deepjax import compile_options
from deepjax.batching import map_batches
from deepjax.errors import UserError


def _reconstruct_fn(model):
  """The motion model's own `reconstruct` (FOMM or TPSMM), jitted."""
  return compile_options.jit(model.reconstruct)


def reconstruct_video(fomm, variables, frames: np.ndarray, batch_size: int = 16) -> np.ndarray:
  """uint8 (T,S,S,3) -> uint8 (T,S,S,3): every frame from frame 0, absolute keypoints."""
  fn = _reconstruct_fn(fomm)
  b = max(1, min(batch_size, len(frames)))
  x = frames.astype(np.float32) / 255.0
  src = jnp.asarray(np.repeat(x[:1], b, axis=0))
  preds = map_batches(lambda chunk: fn(variables, src, jnp.asarray(chunk)), x, b)
  return np.clip(preds * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _face(image: np.ndarray, detect_size: int):
  """Main dlib face of an upscaled copy: (Face, upscaled image, scale) or (None, ...)."""
  from deepjax.faces import detect  # pylint: disable=import-outside-toplevel
  scale = detect_size / image.shape[0]
  big = np.asarray(Image.fromarray(image).resize((detect_size, detect_size), Image.BICUBIC))
  faces = detect.detect_faces(big, "dlib")
  return (faces[0] if faces else None), big, scale


def landmark_metrics(frames: np.ndarray, preds: np.ndarray, every: int = 5,
                     detect_size: int = 256) -> dict:
  """AKD / AED / MKR sums over every `every`-th frame: a dict of sums and counts."""
  from deepjax.faces import detect  # pylint: disable=import-outside-toplevel
  acc = {"akd_sum": 0.0, "aed_sum": 0.0, "both": 0, "gt_faces": 0, "missing": 0, "frames": 0}
  for i in range(0, len(frames), every):
    acc["frames"] += 1
    f_gt, big_gt, scale = _face(frames[i], detect_size)
    if f_gt is None:
      continue
    acc["gt_faces"] += 1
    f_pr, big_pr, _ = _face(preds[i], detect_size)
    if f_pr is None:
      acc["missing"] += 1
      continue
    acc["both"] += 1
    acc["akd_sum"] += float(np.mean(np.abs(f_gt.landmarks - f_pr.landmarks))) / scale
    e_gt = detect.face_embedding(big_gt, f_gt)
    e_pr = detect.face_embedding(big_pr, f_pr)
    acc["aed_sum"] += float(np.linalg.norm(e_gt - e_pr))
  return acc


def _videos_from_folder(folder: str, size: int, max_frames: Optional[int]):
  """{name: uint8 (T,size,size,3)} of every clip in `folder` (centre square, resized)."""
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.data.builders import talking_heads  # pylint: disable=import-outside-toplevel
  from deepjax.faces import animation_crop as fa  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(folder):
    raise UserError(f"not a folder of videos: {folder}")
  out = {}
  for name in talking_heads.list_clips(folder):
    frames = []
    for i, f in enumerate(video.iter_video(os.path.join(folder, name))):
      if max_frames is not None and i >= max_frames:
        break
      h, w = f.shape[:2]
      side = min(h, w)
      box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
      frames.append(fa.crop_resize(f, box, size))
    if frames:
      out[name] = np.stack(frames)
  if not out:
    raise UserError(f"no readable videos in {folder}")
  return out


def _videos_from_config(config, max_frames: Optional[int]):
  """{name: frames} of the test split of the run's own dataset."""
  from deepjax.data import motion_pipeline  # pylint: disable=import-outside-toplevel
  from deepjax.data.builders import common  # pylint: disable=import-outside-toplevel
  builder = motion_pipeline.video_builder(config.data, multihost=False)
  if "test" not in builder.info.splits:
    raise UserError("the run's dataset has no held-out (test) videos; pass a folder of videos")
  source = builder.as_data_source("test")
  starts, counts = common.video_offsets(builder, "test")
  names = builder.info.metadata["test"]["videos"]
  out = {}
  for name, s, c in zip(names, starts, counts):
    c = int(c) if max_frames is None else min(int(c), max_frames)
    out[name] = np.stack([np.asarray(source[int(s) + k]["image"], np.uint8) for k in range(c)])
  return out


def cross_identity_error(fomm, variables, size: int, pairs: int = 2, frames: int = 16,
                         seed: int = 7) -> dict:
  """Synthetic X driven by Y (relative motion) vs the exact ground truth render(X, m_Y)."""
  from deepjax.infer.animate import animate_frames  # pylint: disable=import-outside-toplevel
  from deepjax.data import synthetic  # pylint: disable=import-outside-toplevel
  l1, l1_base, psnr = [], [], []
  for p in range(pairs):
    ident_x = synthetic.sample_identity(seed + 2 * p)
    ident_y = synthetic.sample_identity(seed + 2 * p + 1)
    motion = synthetic.motion_clip(seed + 100 + p, frames)
    driving, _ = synthetic.render(ident_y, motion, size)
    truth, _ = synthetic.render(ident_x, motion, size)
    to8 = lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    pred = animate_frames(fomm, variables, to8(truth[0]), to8(driving), relative=True,
                          batch_size=frames).astype(np.float32) / 255.0
    gt = to8(truth).astype(np.float32) / 255.0
    err = np.abs(pred - gt).mean(axis=(1, 2, 3))
    l1.append(err.mean())
    l1_base.append(np.abs(gt[:1] - gt).mean())
    mse = ((pred - gt) ** 2).mean(axis=(1, 2, 3))
    psnr.append(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))
  return {"l1": float(np.mean(l1)), "psnr": float(np.mean(psnr)),
          "l1_source_unchanged": float(np.mean(l1_base)), "pairs": pairs, "frames": frames}


def evaluate_reconstruction(workdir: str, videos: Optional[str] = None,
                            max_frames: Optional[int] = None, landmark_every: int = 5,
                            batch_size: int = 16, cross_identity: bool = True) -> dict:
  """Reconstruction metrics of the motion model in `workdir` (see the module docstring).

  Args:
    workdir: a run of a `task="motion"` config.
    videos: a folder of clips (face crops; each is centre-squared and resized to the model
      size), or None for the held-out (test) split of the run's own dataset.
    max_frames: frames per video (None = all).
    landmark_every: AKD/AED/MKR on every n-th frame.
    cross_identity: also `cross_identity_error` on synthetic faces.
  Returns:
    {"step", "videos", "frames", "l1", "akd", "aed", "mkr", "landmark_frames",
     "per_video": {...}, "cross_identity": {...}}.
  """
  if not workdir or not os.path.isdir(workdir):
    raise UserError(f"run folder not found: {workdir or '(none given)'}")
  if max_frames is not None and max_frames <= 0:
    raise UserError(f"frames per video must be positive, got {max_frames}")
  from deepjax.infer.animate import load_motion_model  # pylint: disable=import-outside-toplevel
  fomm, variables, config = load_motion_model(workdir)
  size = int(config.data.size)
  clips = (_videos_from_folder(videos, size, max_frames) if videos
           else _videos_from_config(config, max_frames))
  total = {"akd_sum": 0.0, "aed_sum": 0.0, "both": 0, "gt_faces": 0, "missing": 0, "frames": 0}
  l1_sum, base_sum, n_frames, per_video = 0.0, 0.0, 0, {}
  for name, frames in clips.items():
    preds = reconstruct_video(fomm, variables, frames, batch_size)
    err = np.abs(preds.astype(np.float32) - frames.astype(np.float32)) / 255.0
    l1_sum += float(err.mean(axis=(1, 2, 3)).sum())
    base = np.abs(frames[:1].astype(np.float32) - frames.astype(np.float32)) / 255.0
    base_sum += float(base.mean(axis=(1, 2, 3)).sum())
    n_frames += len(frames)
    acc = landmark_metrics(frames, preds, landmark_every)
    for k in total:
      total[k] += acc[k]
    per_video[name] = {"frames": len(frames), "l1": float(err.mean()),
                       "akd": acc["akd_sum"] / acc["both"] if acc["both"] else None}
  nan = float("nan")
  report = {
      "workdir": os.path.abspath(workdir), "size": size, "videos": len(clips),
      "frames": n_frames, "l1": l1_sum / max(n_frames, 1),
      "l1_source_unchanged": base_sum / max(n_frames, 1),
      "akd": total["akd_sum"] / total["both"] if total["both"] else nan,
      "aed": total["aed_sum"] / total["both"] if total["both"] else nan,
      "mkr": total["missing"] / total["gt_faces"] if total["gt_faces"] else nan,
      "landmark_frames": total["frames"], "landmark_frames_with_face": total["gt_faces"],
      "per_video": per_video}
  if cross_identity:
    report["cross_identity"] = cross_identity_error(fomm, variables, size)
  return report


def format_report(r: dict) -> str:
  """A few lines of text."""
  lines = [f"reconstruction on {r['videos']} held-out videos, {r['frames']} frames at "
           f"{r['size']} px (source = frame 0, absolute keypoints):",
           f"  L1 {r['l1']:.4f} (first frame unchanged: {r['l1_source_unchanged']:.4f})   AKD {r['akd']:.3f} px   AED {r['aed']:.4f}   MKR {r['mkr']:.3f}"
           f"   (landmarks on {r['landmark_frames_with_face']}/{r['landmark_frames']} frames "
           "with a face in the original)"]
  c = r.get("cross_identity")
  if c:
    lines.append(f"cross-identity synthetic animation ({c['pairs']} pairs x {c['frames']} "
                 f"frames): L1 {c['l1']:.4f} (source unchanged {c['l1_source_unchanged']:.4f}),"
                 f" PSNR {c['psnr']:.2f} dB")
  return "\n".join(lines)
