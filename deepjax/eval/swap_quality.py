"""Swap evaluation of a trained face-swap workdir: image metrics and pose/expression error.

On a held-out synthetic clip (motion never seen in training) the model swaps
A->B and B->A; the exact ground truth is the other identity rendered with the
same motion (`deepjax.eval.swap_synthetic`). Besides PSNR/SSIM/L1, the landmarks of each
output are located by the synthetic-face landmark regressor
(`deepjax.eval.landmark_regressor`) and compared with the renderer's landmarks
of the ground truth (NME: mean distance / outer inter-ocular distance). The
same regressor applied to the ground-truth frames gives the floor of that
measure (the regressor's own error on this clip).

Rows per direction: "model" (what `deepjax.infer.swap.Swapper` delivers: for mask
models the blend mask*rgb + (1-mask)*input), "model_raw" (mask models only: the
decoder's RGB), "input" (the face unchanged), "mean_face" (the target's average
face), "face_paste" (the ground truth's face region pasted into the input: what
a perfect face-only swap scores on the whole frame) and "ground_truth"
(regressor floor; image metrics are exact). Image metrics come for the whole
frame and inside the ground truth's face region (`deepjax.eval.swap_synthetic`).
"""
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax.eval import swap_synthetic as swap_eval
from deepjax.errors import UserError
from deepjax.eval import landmark_regressor as lmr

SWAP_TASKS = ("ae", "vae", "gan")


def check_swap_workdir(workdir: str):
  """-> the saved config; UserError when workdir holds no swap model trained on synthetic faces."""
  from deepjax.loading import read_config  # pylint: disable=import-outside-toplevel
  config = read_config(workdir)
  if config.get("task") not in SWAP_TASKS:
    raise UserError(f"{workdir} holds a {config.get('task')!r} model, not a face-swap model "
                    f"({', '.join(SWAP_TASKS)})")
  if config.data.get("source", "synthetic") != "synthetic":
    raise UserError(f"{workdir} was trained on face folders; swap evaluation needs exact ground "
                    "truth, i.e. a model trained on synthetic identities (data.source=synthetic)")
  return config


def swap_functions(workdir: str):
  """-> (config, {"model": fn, "model_raw": fn or absent}); fn(images, to_identity) -> images."""
  from deepjax.infer.swap import Swapper  # pylint: disable=import-outside-toplevel
  swapper = Swapper(workdir)
  config = swapper.config
  fns = {"model": lambda x, d: swapper(np.asarray(x), "a2b" if d == "b" else "b2a")[0]}
  if config.model.get("mask", False):
    model, params = swapper.model, swapper.params
    raw = {d: compile_options.jit(lambda x, d=d: model.apply({"params": params}, x, d)[0])
           for d in "ab"}
    fns["model_raw"] = lambda x, d: raw[d](jnp.asarray(x))
  return config, fns


def evaluate(workdir: str, n_frames: int = 64, regressor_dir: str | None = None):
  """Full swap evaluation of `workdir`; -> JSON-able dict (see the module docstring)."""
  check_swap_workdir(workdir)
  config, fns = swap_functions(workdir)
  results, clip, outputs = swap_eval.evaluate_swap(fns["model"], config.data, n_frames)
  lm_params, lm_report = lmr.load_or_train(regressor_dir)
  settings = lm_report["settings"]
  means = swap_eval.mean_face(config.data)
  for src, dst in (("a", "b"), ("b", "a")):
    key = f"{src}2{dst}"
    gt, gt_lm = clip[dst], clip[f"{dst}_landmarks"]
    face = swap_eval.face_region(gt_lm, gt.shape[1])
    rows = results[key]
    images = {"model": outputs[key], "input": clip[src],
              "mean_face": np.broadcast_to(means[dst], gt.shape),
              "face_paste": swap_eval.face_paste(gt, clip[src], face), "ground_truth": gt}
    if "model_raw" in fns:
      raw = swap_eval.batched(lambda x, d=dst: fns["model_raw"](x, d), clip[src])
      images["model_raw"] = raw
      rows["model_raw"] = swap_eval.image_metrics(raw, gt, face)
    rows["ground_truth"] = {"psnr": float("inf"), "ssim": 1.0, "l1": 0.0,
                            "face_psnr": float("inf"), "face_l1": 0.0, "face_sharpness": 1.0}
    for name, img in images.items():
      pred = lmr.predict(lm_params, np.ascontiguousarray(img), settings)
      rows[name]["nme"] = float(lmr.nme(pred, gt_lm).mean())
      rows[name]["landmark_px"] = float(lmr.pixel_error(pred, gt_lm, gt.shape[1]).mean())
    results[key] = {k: rows[k] for k in ("model", "model_raw", "input", "mean_face",
                                         "face_paste", "ground_truth") if k in rows}
  return {"workdir": workdir, "task": config.task, "frames": n_frames,
          "step": _step_of(workdir), "results": results,
          "landmark_regressor": {"test": lm_report["test"], "size": int(settings["size"]),
                                 "train_seconds": lm_report.get("train_seconds")}}


def _step_of(workdir):
  from deepjax.loading import _checkpoint_step_dir  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  name = os.path.basename(_checkpoint_step_dir(workdir))
  return int(name) if name.isdigit() else None


LABELS = {**swap_eval.LABELS, "model_raw": "model (raw RGB)", "ground_truth": "ground truth"}


def format_table(report: dict) -> str:
  """Console table: direction, method, PSNR, SSIM, L1 (whole frame), PSNR and L1 inside the
  ground truth's face region, the face's sharpness relative to the ground truth's, landmark
  NME and pixels."""
  lines = [f"{'direction':<10}{'method':<17}{'PSNR dB':>9}{'SSIM':>8}{'L1':>8}"
           f"{'face dB':>9}{'face L1':>9}{'sharp':>7}{'NME':>8}{'lm px':>8}"]
  for direction, rows in report["results"].items():
    for name, m in rows.items():
      lines.append(f"{direction:<10}{LABELS.get(name, name):<17}{m['psnr']:>9.2f}"
                   f"{m['ssim']:>8.3f}{m['l1']:>8.4f}{swap_eval.format_db(m['face_psnr']):>9}"
                   f"{m['face_l1']:>9.4f}{m.get('face_sharpness', float('nan')):>7.3f}"
                   f"{m['nme']:>8.4f}{m['landmark_px']:>8.2f}")
  t = report["landmark_regressor"]["test"]
  lines.append(f"landmark regressor's own error on unseen synthetic faces: NME "
               f"{t['sharp']['nme_mean']:.4f} sharp, {t['half_blurred']['nme_mean']:.4f} with "
               f"half blurred ({t['sharp']['pixels_mean']:.2f} px at "
               f"{report['landmark_regressor']['size']} px)")
  return "\n".join(lines)
