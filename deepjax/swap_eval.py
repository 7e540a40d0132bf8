"""Swap quality against exact ground truth on held-out synthetic clips.

A held-out clip of identity A (motion never seen in training) is swapped
A->B; the ground truth is B rendered with the same motion. Baselines: the input
unchanged, and B's mean face (the average of B's training faces). The same
for B->A.
"""
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax import losses
from deepjax.data import synthetic

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


def image_metrics(pred, target):
  """Mean PSNR, SSIM and L1 of float (T,S,S,3) arrays."""
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  return {"psnr": float(jnp.mean(losses.psnr(pred, target))),
          "ssim": float(jnp.mean(losses.ssim(pred, target))),
          "l1": float(jnp.mean(jnp.abs(pred - target)))}


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
    results[f"{src}2{dst}"] = {
        "model": image_metrics(pred, gt),
        "input": image_metrics(clip[src], gt),
        "mean_face": image_metrics(np.broadcast_to(means[dst], gt.shape), gt),
    }
  return results, clip, outputs


def format_table(results) -> str:
  lines = [f"{'direction':<10}{'method':<14}{'PSNR dB':>9}{'SSIM':>8}{'L1':>8}"]
  for direction, rows in results.items():
    for name, m in rows.items():
      label = {"model": "model", "input": "input as is", "mean_face": "mean face"}.get(name, name)
      lines.append(f"{direction:<10}{label:<14}{m['psnr']:>9.2f}{m['ssim']:>8.3f}{m['l1']:>8.4f}")
  return "\n".join(lines)


def jit_swap(task, params):
  """A jitted swap_fn for `evaluate_swap` from a swap task and its params."""
  fns = {d: compile_options.jit(lambda x, d=d: task.swap(params, x, d)[0]) for d in ("a", "b")}
  return lambda x, d: fns[d](jnp.asarray(x))
