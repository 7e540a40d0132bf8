"""Swap quality on real people: identity, expression/pose, jitter, sharpness (dlib, offline).

For a face-swap run trained from face folders (`config.data.source ==
"folders"`, folders written by `deepjax extract`), held-out crops of both people
(the folders' `test` split, by the same name hash as training, or any folder of
crops given instead) are swapped A->B and B->A with `deepjax.infer.swap.Swapper`.
Every crop is upscaled to ANALYSIS_SIDE px and analysed with dlib: the HOG
detector (is a face found?), the 68-point shape predictor and the 128-d ResNet
identity embedding (`deepjax.faces.detect`).

Measures per row (mean over frames):
- retrieval: % of outputs whose embedding is nearest to the TARGET identity's
  gallery embedding (mean embedding of each identity's training crops; the
  gallery can hold other people too), the FaceForensics++-style measure;
- dist_target / dist_source: mean embedding distance to the target's / the
  source's gallery embedding (dlib: < 0.6 usually means the same person);
- nme: landmarks of the output vs landmarks of its input (both located by the
  shape predictor inside the box detected on the input), mean point distance /
  the input's outer inter-ocular distance: lost expression/pose;
- jitter: mean norm of (landmark motion of the output - landmark motion of the
  input) between consecutive frames (sorted file names), / inter-ocular
  distance; 0 when the output moves exactly as its input. With the default
  test split, consecutive held-out crops are frames a few frames apart; a
  contiguous clip's crops in --frames_a/--frames_b give frame-to-frame jitter;
- found: % of outputs where the detector finds a face;
- sharpness: Laplacian variance of the output / that of its input (grey, per
  frame, then the mean): < 1 is blurrier than the input.
Rows per direction: "swap" (the model), "input" (unchanged: identity = source)
and "target_recon" (the target's own held-out crops through their own decoder,
B->B for A->B).
"""
import os

import numpy as np
from absl import logging

from deepjax.errors import UserError
from deepjax.eval.sharpness import sharpness_ratio

ANALYSIS_SIDE = 256
SWAP_TASKS = ("ae", "vae", "gan")
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45


# ---- metric functions (pure numpy) ----

def retrieval(emb_NxD: np.ndarray, gallery_KxD: np.ndarray, target: int) -> float:
  """% of rows of `emb` whose nearest gallery row (Euclidean) is `target`."""
  emb, gallery = np.asarray(emb_NxD, np.float64), np.asarray(gallery_KxD, np.float64)
  if len(emb) == 0:
    return float("nan")
  d = np.linalg.norm(emb[:, None, :] - gallery[None, :, :], axis=-1)
  return float(100.0 * np.mean(np.argmin(d, axis=1) == target))


def nearest_counts(emb_NxD: np.ndarray, gallery_KxD: np.ndarray, names) -> dict:
  """{gallery name: how many rows of `emb` are nearest to it} (names with none left out)."""
  d = np.linalg.norm(np.asarray(emb_NxD)[:, None] - np.asarray(gallery_KxD)[None], axis=-1)
  idx, counts = np.unique(np.argmin(d, axis=1), return_counts=True)
  return {names[i]: int(c) for i, c in zip(idx, counts)}


def mean_distance(emb_NxD: np.ndarray, ref_D: np.ndarray) -> float:
  """Mean Euclidean distance of the rows of `emb` to `ref`."""
  if len(emb_NxD) == 0:
    return float("nan")
  return float(np.mean(np.linalg.norm(np.asarray(emb_NxD) - np.asarray(ref_D)[None], axis=-1)))


def interocular(lm_Nx68x2: np.ndarray) -> np.ndarray:
  """Outer inter-ocular distance of each landmark set: (N,)."""
  lm = np.asarray(lm_Nx68x2, np.float64)
  return np.linalg.norm(lm[:, LEFT_EYE_OUTER] - lm[:, RIGHT_EYE_OUTER], axis=-1)


def nme(pred_Nx68x2: np.ndarray, ref_Nx68x2: np.ndarray) -> float:
  """Mean landmark distance / the reference's outer inter-ocular distance, over frames."""
  pred, ref = np.asarray(pred_Nx68x2, np.float64), np.asarray(ref_Nx68x2, np.float64)
  if len(ref) == 0:
    return float("nan")
  err = np.linalg.norm(pred - ref, axis=-1).mean(axis=1)
  return float(np.mean(err / np.maximum(interocular(ref), 1e-6)))


def jitter(out_Tx68x2: np.ndarray, in_Tx68x2: np.ndarray) -> float:
  """Mean |motion(out) - motion(in)| per point between consecutive frames / inter-ocular."""
  out, ref = np.asarray(out_Tx68x2, np.float64), np.asarray(in_Tx68x2, np.float64)
  if len(ref) < 2:
    return float("nan")
  diff = np.linalg.norm(np.diff(out, axis=0) - np.diff(ref, axis=0), axis=-1).mean(axis=1)
  return float(np.mean(diff / np.maximum(interocular(ref[1:]), 1e-6)))


# ---- dlib analysis of crops ----

def _upscale(face_SxSx3: np.ndarray) -> np.ndarray:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  u8 = np.clip(np.asarray(face_SxSx3) * 255.0 + 0.5, 0, 255).astype(np.uint8)
  return np.asarray(Image.fromarray(u8).resize((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.BICUBIC))


def default_box() -> np.ndarray:
  """The box used when no face is detected on an input crop: the central 80 %."""
  m = 0.1 * ANALYSIS_SIDE
  return np.array([m, m, ANALYSIS_SIDE - m, ANALYSIS_SIDE - m], np.float32)


def detect_box(face_SxSx3: np.ndarray):
  """-> (found, box [l,t,r,b] at ANALYSIS_SIDE px) of the largest detected face."""
  from deepjax.faces import detect  # pylint: disable=import-outside-toplevel
  faces = detect.detect_faces(_upscale(face_SxSx3), backend="dlib")
  return (True, faces[0].box) if faces else (False, default_box())


def analyse(face_SxSx3: np.ndarray, box: np.ndarray):
  """-> (landmarks (68,2) at ANALYSIS_SIDE px, embedding (128,)) of a crop inside `box`."""
  from deepjax.faces import detect  # pylint: disable=import-outside-toplevel
  img = _upscale(face_SxSx3)
  lm = detect.landmarks_from_box(img, box)
  emb = detect.face_embedding(img, detect.Face(box=np.asarray(box, np.float32), landmarks=lm,
                                               score=0.0))
  return lm, emb


def gallery_embedding(faces_NxSxSx3: np.ndarray) -> np.ndarray:
  """Mean embedding of the crops where a face is found (all crops when none is)."""
  found, embs = [], []
  for f in faces_NxSxSx3:
    ok, box = detect_box(f)
    embs.append(analyse(f, box)[1])
    found.append(ok)
  embs = np.stack(embs)
  return embs[np.asarray(found)].mean(0) if any(found) else embs.mean(0)


# ---- data ----

def load_crops(folder: str, size: int, names=None, limit: int | None = None):
  """-> (float32 (N,size,size,3) in [0,1], file names) of `names` (default: all) in `folder`."""
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.data.builders import common  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(folder):
    raise UserError(f"face folder not found: {folder}")
  if names is None:
    names = sorted(os.path.basename(p) for p in video.list_images(folder))
  names = list(names)
  if limit:
    names = names[:: max(1, len(names) // limit)][:limit]
  if not names:
    raise UserError(f"no face images in {folder}")
  faces = [common.square_resize(video.read_image(os.path.join(folder, n)), size) for n in names]
  return np.stack(faces).astype(np.float32) / 255.0, names


def split_names(folder: str, test_fraction: float):
  """(train, test) image names of a face folder, split as training split them."""
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.data.builders import face_folders  # pylint: disable=import-outside-toplevel
  names = [os.path.basename(p) for p in video.list_images(folder)]
  return face_folders.split_files(names, test_fraction)


def check_workdir(workdir: str):
  """-> the saved config; UserError unless it is a swap model trained on face folders."""
  from deepjax.loading import read_config  # pylint: disable=import-outside-toplevel
  config = read_config(workdir)
  if config.get("task") not in SWAP_TASKS:
    raise UserError(f"{workdir} holds a {config.get('task')!r} model, not a face-swap model")
  source = config.data.get("source", "synthetic")
  if source != "folders":
    raise UserError(f"{workdir} was trained on {source!r} data; swap_real needs a run trained "
                    "from face folders (data.source=folders); the synthetic swap evaluation covers the others")
  for side in "ab":
    if not os.path.isdir(str(config.data.get(side, ""))):
      raise UserError(f"face folder data.{side} of {workdir} not found: "
                      f"{config.data.get(side, '')!r}")
  return config


# ---- the evaluation ----

def _analyse_inputs(faces):
  """-> dict found (N,), box (N,4), lm (N,68,2), emb (N,128) of input crops."""
  found, boxes, lms, embs = [], [], [], []
  for f in faces:
    ok, box = detect_box(f)
    lm, emb = analyse(f, box)
    found.append(ok)
    boxes.append(box)
    lms.append(lm)
    embs.append(emb)
  return {"found": np.asarray(found), "box": np.stack(boxes), "lm": np.stack(lms),
          "emb": np.stack(embs)}


def _analyse_outputs(outputs, inputs_info):
  """Outputs analysed inside their inputs' boxes; found = own detection."""
  found, lms, embs = [], [], []
  for f, box in zip(outputs, inputs_info["box"]):
    found.append(detect_box(f)[0])
    lm, emb = analyse(f, box)
    lms.append(lm)
    embs.append(emb)
  return {"found": np.asarray(found), "lm": np.stack(lms), "emb": np.stack(embs)}


def score(outputs, inputs, in_info, out_info, gallery, names, target: str, source: str) -> dict:
  """One row of the table (see the module docstring) from analysed inputs and outputs."""
  t = names.index(target)
  return {"retrieval": retrieval(out_info["emb"], gallery, t),
          "dist_target": mean_distance(out_info["emb"], gallery[t]),
          "dist_source": mean_distance(out_info["emb"], gallery[names.index(source)]),
          "nme": nme(out_info["lm"], in_info["lm"]),
          "jitter": jitter(out_info["lm"], in_info["lm"]),
          "found": float(100.0 * np.mean(out_info["found"])),
          "sharpness": sharpness_ratio(outputs, inputs),
          "nearest": nearest_counts(out_info["emb"], gallery, names),
          "frames": int(len(inputs))}


def _test_crops(folder, frames_dir, size, test_fraction, max_frames):
  if frames_dir:
    faces, names = load_crops(frames_dir, size, limit=max_frames)
    return faces, names, frames_dir
  _, test = split_names(folder, test_fraction)
  if not test:
    raise UserError(f"{folder} has no held-out (test) crops; set data.test_fraction > 0 in "
                    "training, or give folders of held-out crops of each person")
  faces, names = load_crops(folder, size, test, limit=max_frames)
  return faces, names, f"{folder} (test split)"


def build_gallery(config, extra_dirs, gallery_max: int):
  """-> (names, (K,128) mean embeddings): A and B from their training crops, then extra_dirs."""
  size, tf = int(config.data.size), float(config.data.get("test_fraction", 0.1))
  names, rows = [], []
  for side in "ab":
    folder = str(config.data[side])
    train, _ = split_names(folder, tf)
    faces, _ = load_crops(folder, size, train, limit=gallery_max)
    names.append(side)
    rows.append(gallery_embedding(faces))
  for d in extra_dirs:
    faces, _ = load_crops(d, size, limit=gallery_max)
    names.append(os.path.basename(os.path.normpath(d)))
    rows.append(gallery_embedding(faces))
  return names, np.stack(rows)


def evaluate(workdir: str, frames_a: str | None = None, frames_b: str | None = None,
             gallery_dirs=(), max_frames: int = 64, gallery_max: int = 64) -> dict:
  """Full evaluation of `workdir` (see the module docstring); -> JSON-able dict."""
  from deepjax.eval.swap_quality import _step_of  # pylint: disable=import-outside-toplevel
  from deepjax.infer.swap import Swapper  # pylint: disable=import-outside-toplevel
  config = check_workdir(workdir)
  size, tf = int(config.data.size), float(config.data.get("test_fraction", 0.1))
  test, sources = {}, {}
  for side, frames_dir in (("a", frames_a), ("b", frames_b)):
    faces, _, sources[side] = _test_crops(str(config.data[side]), frames_dir, size, tf,
                                          max_frames)
    test[side] = faces
  names, gallery = build_gallery(config, gallery_dirs, gallery_max)
  logging.info("gallery of %d identities: %s", len(names), names)
  swapper = Swapper(workdir)
  info = {side: _analyse_inputs(test[side]) for side in "ab"}
  results = {}
  for src, dst in (("a", "b"), ("b", "a")):
    direction = f"{src}2{dst}"
    swapped = np.asarray(swapper(test[src], direction)[0])
    recon = np.asarray(swapper(test[dst], f"{src}2{dst}")[0])  # dst's crops, dst's decoder
    results[direction] = {
        "swap": score(swapped, test[src], info[src], _analyse_outputs(swapped, info[src]),
                      gallery, names, dst, src),
        "input": score(test[src], test[src], info[src], info[src], gallery, names, dst, src),
        "target_recon": score(recon, test[dst], info[dst], _analyse_outputs(recon, info[dst]),
                              gallery, names, dst, dst)}
  return {"workdir": workdir, "task": config.task, "step": _step_of(workdir),
          "frames": {side: int(len(test[side])) for side in "ab"}, "frames_from": sources,
          "input_found": {side: float(100.0 * np.mean(info[side]["found"])) for side in "ab"},
          "gallery": names,
          "gallery_distances": np.linalg.norm(gallery[:, None] - gallery[None], axis=-1)
                               .round(4).tolist(), "analysis_side": ANALYSIS_SIDE, "results": results}


LABELS = {"swap": "swap", "input": "input unchanged", "target_recon": "target recon"}


def format_table(report: dict) -> str:
  """Console table: one line per direction and row."""
  lines = [f"{'direction':<10}{'row':<17}{'retr %':>8}{'d tgt':>7}{'d src':>7}{'NME':>8}"
           f"{'jitter':>8}{'found %':>9}{'sharp':>7}"]
  for direction, rows in report["results"].items():
    for name, m in rows.items():
      lines.append(f"{direction:<10}{LABELS.get(name, name):<17}{m['retrieval']:>8.1f}"
                   f"{m['dist_target']:>7.3f}{m['dist_source']:>7.3f}{m['nme']:>8.4f}"
                   f"{m['jitter']:>8.4f}{m['found']:>9.1f}{m['sharpness']:>7.2f}")
  d = np.asarray(report["gallery_distances"])
  closest = np.min(d + np.diag(np.full(len(d), np.inf))) if len(d) > 1 else float("nan")
  lines.append(f"gallery ({len(report['gallery'])} identities, closest two {closest:.3f} apart): "
               f"{', '.join(report['gallery'])}; "
               f"held-out crops: a {report['frames']['a']}, b {report['frames']['b']}; faces "
               f"found on inputs: a {report['input_found']['a']:.0f} %, "
               f"b {report['input_found']['b']:.0f} %")
  return "\n".join(lines)
