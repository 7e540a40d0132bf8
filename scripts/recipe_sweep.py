"""Compare CPU recipes of the demo's face-swap model on the demo's own evaluation.

    python scripts/recipe_sweep.py [--recipes=base,lap,ffl,l1lap] [--steps=450]
                                   [--root=/tmp/deepjax_recipes] [--output=FILE.json]

Each recipe is `configs/faceswap_ae.py:tiny` (the demo's config) with a few overrides
(RECIPES below; `base` is the demo's recipe before it took `loss.ssim=0.5`, `ssim05` the
recipe now); each is trained the same number of steps on the same two synthetic
identities, then scored like `deepjax demo` scores itself: swaps of held-out frames
(poses and expressions over the training range, and a talking clip) against the exact
ground truth, A->B and B->A averaged: face-region PSNR, SSIM, and face sharpness (the
swap's Laplacian energy relative to the ground truth's inside the face: 1 = as sharp,
< 1 blurrier; `deepjax.eval.sharpness`). Training seconds are printed beside each so a
recipe that costs more per step shows it. Reruns reuse finished runs (their checkpoint)
and the training time kept with them.
"""
import argparse
import json
import os
import sys
import time

# The demo's recipe before it took loss.ssim=0.5: every recipe starts from it.
BASE = {"loss.ssim": 0.0}
# name -> overrides of BASE (dotted keys).
RECIPES = {
    "base": {},
    "lap": {"loss.laplacian": 1.0},
    "ffl": {"loss.focal_frequency": 10.0},
    "l1lap": {"loss.mse": 0.0, "loss.l1": 1.0, "loss.laplacian": 1.0},
    "ssim": {"loss.ssim": 1.0},
    "ssim05": {"loss.ssim": 0.5},  # faceswap_ae:tiny as it is now
    "ssim2": {"loss.ssim": 2.0},
    "lr1e3": {"optimizer.learning_rate": 1e-3},
    "cos1e3": {"optimizer.learning_rate": 1e-3, "optimizer.schedule": "cosine",
               "optimizer.warmup_steps": 20},
}


def build_config(name: str, steps: int):
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  c = load_config("faceswap_ae", f"tiny,steps={steps}")
  c.update_from_flattened_dict({**BASE, **RECIPES[name]})
  with c.unlocked():
    c.checkpoint_every = steps
  return c


def train_once(config, workdir: str) -> float:
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  from deepjax.train import loop  # pylint: disable=import-outside-toplevel
  record = os.path.join(workdir, "train_seconds.json")
  if os.path.exists(record):
    with open(record) as f:
      return json.load(f)["train_seconds"]
  t = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  seconds = time.perf_counter() - t
  write_text_atomic(record, json.dumps({"train_seconds": seconds}))
  return seconds


def score(config, workdir: str) -> dict:
  """{motion: {metric: mean of A->B and B->A}} for the model row (demo's evaluation)."""
  from deepjax.eval import swap_synthetic as swap_eval  # pylint: disable=import-outside-toplevel
  from deepjax.loading import load_params  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks import build_task  # pylint: disable=import-outside-toplevel
  swap_fn = swap_eval.jit_swap(build_task(config), load_params(workdir))
  means = swap_eval.mean_face(config.data)
  out = {}
  for motion in swap_eval.MOTIONS:
    results, _, _ = swap_eval.evaluate_swap(swap_fn, config.data, 64, motion=motion, means=means)
    rows = [results[d]["model"] for d in ("a2b", "b2a")]
    out[motion] = {k: sum(r[k] for r in rows) / 2 for k in rows[0]}
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--recipes", default="base,lap,ffl,l1lap")
  p.add_argument("--steps", type=int, default=450)
  p.add_argument("--root", default="/tmp/deepjax_recipes")
  p.add_argument("--output", default="")
  args = p.parse_args()
  names = [n.strip() for n in args.recipes.split(",") if n.strip()]
  bad = [n for n in names if n not in RECIPES]
  if bad:
    sys.exit(f"error: unknown recipes {bad}; known: {', '.join(RECIPES)}")
  from deepjax.cli import program  # pylint: disable=import-outside-toplevel
  program.enable_compilation_cache()
  rows = []
  for name in names:
    config = build_config(name, args.steps)
    workdir = os.path.join(args.root, f"{name}_s{args.steps}")
    print(f"== {name}: faceswap_ae:tiny with {({**BASE, **RECIPES[name]})} -> {workdir}",
          flush=True)
    seconds = train_once(config, workdir)
    rows.append({"recipe": name, "overrides": {**BASE, **RECIPES[name]}, "steps": args.steps,
                 "train_seconds": seconds, "scores": score(config, workdir)})
  header = (f"{'recipe':<10}{'train s':>8}" + "".join(
      f"{m + ' ' + k:>18}" for m in ("poses", "clip") for k in ("face dB", "SSIM", "sharp")))
  print(header)
  for r in rows:
    cells = "".join(f"{r['scores'][m][k]:>18.3f}" for m in ("poses", "clip")
                    for k in ("face_psnr", "ssim", "face_sharpness"))
    print(f"{r['recipe']:<10}{r['train_seconds']:>8.0f}{cells}")
  if args.output:
    from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
    write_text_atomic(args.output, json.dumps(rows, indent=2))


if __name__ == "__main__":
  main()
