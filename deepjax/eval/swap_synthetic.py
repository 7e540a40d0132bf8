"""Swap quality against exact ground truth on held-out synthetic clips.

A held-out clip of identity A (motion never seen in training) is swapped
A->B; the ground truth is B rendered with the same motion. Baselines: the input
unchanged, and B's mean face (the average of B's training faces). The same
for B->A.

Each method is scored on the whole frame (psnr, ssim, l1) and inside the
ground truth's face region (face_psnr, face_l1: the jaw + brows polygon of its
landmarks, `deepjax.ops.face_hull`). The synthetic identities differ outside the
face too (hair, ears, background), so a swap that replaces only the face -- the
mask-blending GAN, or any paste-back into real footage -- is capped on the whole
frame: the "face_paste" row (the ground truth's face region pasted into the
input, hard edge) is that cap. Inside the face region every family is asked the
same thing, so the face metrics compare them all fairly.
"""
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax import losses
from deepjax.data import synthetic
from deepjax.eval.sharpness import sharpness_ratio
from deepjax.ops.face_hull import face_hull_mask

HELDOUT_MOTION_SEED = 90_001

# "clip": a smooth talking-head clip (small motion: the mean face is a strong baseline);
# "poses": independent frames with poses and expressions drawn like the training data's
# (never the same frames), which tests pose/expression transfer across the whole range.
MOTIONS = ("clip", "poses")


def heldout_clip(data_cfg, n_frames: int = 64, motion_seed: int = HELDOUT_MOTION_SEED,
                 motion: str = "clip"):
  """-> dict with 'a', 'b' float32 (T,S,S,3) (same motion) and their landmarks (T,68,2)."""
  if motion not in MOTIONS:
    raise ValueError(f"motion must be one of {MOTIONS}")
  motion = (synthetic.motion_clip(motion_seed, n_frames) if motion == "clip"
            else synthetic.sample_motion(motion_seed, n_frames))
  out = {}
  for ident, seed in (("a", data_cfg.identity_a), ("b", data_cfg.identity_b)):
    img, lm = synthetic.render(synthetic.sample_identity(int(seed)), motion, int(data_cfg.size))
    out[ident], out[f"{ident}_landmarks"] = np.asarray(img), np.asarray(lm)
  return out


def mean_face(data_cfg, n: int = 256, seed: int = 0):
  """The average of `n` training-distribution faces of each identity: (S,S,3) each."""
  motion = synthetic.sample_motion(seed, n)
  out = {}
  for ident, s in (("a", data_cfg.identity_a), ("b", data_cfg.identity_b)):
    img, _ = synthetic.render(synthetic.sample_identity(int(s)), motion, int(data_cfg.size))
    out[ident] = np.asarray(img).mean(0)
  return out


def image_metrics(pred, target, region=None):
  """Mean PSNR, SSIM and L1 of float (T,S,S,3) arrays in [0, 1].

  With `region` (T,S,S,1) in {0, 1} also face_psnr / face_l1: the same measures
  over the pixels inside the region only (per frame, then averaged), and
  face_sharpness: the Laplacian energy of `pred` relative to the target's inside the
  region (`deepjax.eval.sharpness`; 1 = as sharp as the ground truth, < 1 blurrier).
  """
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  out = {"psnr": float(jnp.mean(losses.psnr(pred, target))),
         "ssim": float(jnp.mean(losses.ssim(pred, target))),
         "l1": float(jnp.mean(jnp.abs(pred - target)))}
  if region is not None:
    w = jnp.broadcast_to(jnp.asarray(region, jnp.float32), pred.shape)
    n = jnp.maximum(jnp.sum(w, axis=(1, 2, 3)), 1.0)
    mse = jnp.sum(w * (pred - target) ** 2, axis=(1, 2, 3)) / n
    out["face_psnr"] = float(jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-10))))
    out["face_l1"] = float(jnp.mean(jnp.sum(w * jnp.abs(pred - target), axis=(1, 2, 3)) / n))
    out["face_sharpness"] = sharpness_ratio(np.asarray(pred), np.asarray(target), region)
  return out


def face_region(landmarks_Tx68x2, size: int) -> np.ndarray:
  """The face region (jaw + brows polygon) of each frame: float32 (T,S,S,1) in {0, 1}."""
  return np.asarray(face_hull_mask(jnp.asarray(landmarks_Tx68x2), size))


def face_paste(target, image, face):
  """The target's face region pasted into `image` (hard edge): the cap of a face-only swap."""
  return face * target + (1 - face) * image


def batched(fn, x, chunk: int = 32):
  """Applies fn to x in chunks along axis 0 and concatenates (bounded memory)."""
  return np.concatenate([np.asarray(fn(x[i:i + chunk])) for i in range(0, len(x), chunk)])


def evaluate_swap(swap_fn, data_cfg, n_frames: int = 64, motion: str = "clip", means=None):
  """swap_fn(images float (n,S,S,3), to_identity) -> float (n,S,S,3).

  `means` (from `mean_face`) can be passed to reuse it across calls.
  Returns {"a2b": {"model": m, "input": m, "mean_face": m}, "b2a": {...}} where m
  holds psnr/ssim/l1 against the exact ground truth; and the clip (for videos).
  """
  clip = heldout_clip(data_cfg, n_frames, motion=motion)
  means = mean_face(data_cfg) if means is None else means
  results = {}
  outputs = {}
  for src, dst in (("a", "b"), ("b", "a")):
    pred = batched(lambda x, d=dst: swap_fn(x, d), clip[src])
    outputs[f"{src}2{dst}"] = pred
    gt = clip[dst]
    face = face_region(clip[f"{dst}_landmarks"], gt.shape[1])
    results[f"{src}2{dst}"] = {
        "model": image_metrics(pred, gt, face),
        "input": image_metrics(clip[src], gt, face),
        "mean_face": image_metrics(np.broadcast_to(means[dst], gt.shape), gt, face),
        "face_paste": image_metrics(face_paste(gt, clip[src], face), gt, face),
    }
  return results, clip, outputs


LABELS = {"model": "model", "input": "input as is", "mean_face": "mean face",
          "face_paste": "GT face pasted"}


def format_db(v: float) -> str:
  """PSNR for a table: "exact" at the 100 dB floor of a zero error."""
  return "exact" if v >= 99.0 else f"{v:.2f}"


def format_table(results) -> str:
  """Console table: direction, method, PSNR / SSIM / L1 (frame), PSNR / L1 / sharpness
  (face region)."""
  lines = [f"{'direction':<10}{'method':<16}{'PSNR dB':>9}{'SSIM':>8}{'L1':>8}"
           f"{'face dB':>9}{'face L1':>9}{'sharp':>7}"]
  for direction, rows in results.items():
    for name, m in rows.items():
      lines.append(f"{direction:<10}{LABELS.get(name, name):<16}{m['psnr']:>9.2f}"
                   f"{m['ssim']:>8.3f}{m['l1']:>8.4f}{format_db(m['face_psnr']):>9}"
                   f"{m['face_l1']:>9.4f}{m.get('face_sharpness', float('nan')):>7.3f}")
  return "\n".join(lines)


def jit_swap(task, params):
  """A jitted swap_fn for `evaluate_swap` from a swap task and its params."""
  fns = {d: compile_options.jit(lambda x, d=d: task.swap(params, x, d)[0]) for d in ("a", "b")}
  return lambda x, d: fns[d](jnp.asarray(x))
