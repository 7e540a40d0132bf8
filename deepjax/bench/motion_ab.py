"""Same-process A/B of the first-order motion train step: now vs. without two formulations.

    python -m deepjax.bench.motion_ab [--config=fomm_vox256:res=64] [--rounds=8]

"before" is MotionTask's step with optax.adam instead of deepjax.train.optim.adam and the
keypoint detector called three times (source, driving, transformed driving) instead of
once on the three batches (`FOMM.apply_kp_detector_many`); "now" is the step as it is.
Both are the same maths (tests/test_optim.py, tests/test_motion_models.py). Their
compiled steps run alternately, `rounds` times each, in one process, so that the
machine's speed drifting over minutes (a shared 2-core CPU varies by ~10 %) hits both
alike; separate benchmark runs of the two could not tell a 2-5 % difference apart.
Random frames, batch 8, a random-weight VGG19 (as `motion_bench.bench_train`).
"""
import argparse
import statistics
import time

import jax
import numpy as np
import optax

from deepjax import compile_options
from deepjax.bench.timing import print_row
from deepjax.models.motion.fomm import FOMM
from deepjax.bench.fomm_animate import load_config
from deepjax.models.vgg import random_vgg19_params
from deepjax.train.tasks import motion


class SequentialDetectorFOMM(FOMM):
  """FOMM whose `apply_kp_detector_many` makes one detector call per batch, in order."""

  def apply_kp_detector_many(self, variables, images, train=False):
    kps = []
    for image in images:
      kp, kp_vars = self.apply_kp_detector(variables, image, train)
      variables = dict(variables, kp_detector=kp_vars)
      kps.append(kp)
    return kps, variables["kp_detector"]


def _before(task: motion.MotionTask, config) -> motion.MotionTask:
  """A copy of `task` with optax.adam and sequential detector calls."""
  old = motion.MotionTask(config)
  old.vgg = task.vgg
  old.fomm = SequentialDetectorFOMM(task.fomm.kp_detector, task.fomm.generator)
  old.tx = motion.optimizers(config.train, int(config.num_steps), adam=optax.adam)
  return old


def bench(config_arg: str = "fomm_vox256:res=64", batch: int = 8, rounds: int = 8) -> dict:
  """Seconds per step of "before" and "now", alternating; medians, means and their ratio."""
  config = load_config(config_arg)
  size = int(config.data.size)
  now = motion.MotionTask(config)
  if now.vgg is None:
    now.vgg = random_vgg19_params(jax.random.key(5))
  tasks = {"before": _before(now, config), "now": now}
  rng = np.random.default_rng(0)
  data = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
          for k in ("source", "driving")}
  steps, states = {}, {}
  for name, task in tasks.items():
    states[name] = compile_options.jit(task.init)(jax.random.key(0), data)
    fn = compile_options.jit(task.train_step, donate_argnums=(0,))
    steps[name] = fn.lower(states[name], data).compile()
    states[name], m = steps[name](states[name], data)  # warm-up
    jax.block_until_ready(m)
  times = {name: [] for name in tasks}
  for _ in range(rounds):
    for name in tasks:
      t = time.perf_counter()
      states[name], m = steps[name](states[name], data)
      jax.block_until_ready((states[name], m))
      times[name].append(time.perf_counter() - t)
  out = {"row": "fomm_ab", "config": config_arg, "batch": batch, "rounds": rounds}
  for name, ts in times.items():
    out[f"{name}_median_s"] = statistics.median(ts)
    out[f"{name}_mean_s"] = statistics.mean(ts)
  out["before_over_now"] = out["before_median_s"] / out["now_median_s"]
  out["note"] = (f"median s/step before {out['before_median_s']:.3f}, now "
                 f"{out['now_median_s']:.3f} ({out['before_over_now']:.3f}x)")
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="fomm_vox256:res=64")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=8)
  args = parser.parse_args()
  if args.rounds < 1 or args.batch < 1:
    raise SystemExit("error: --rounds and --batch must be at least 1")
  print_row(bench, args.config, args.batch, args.rounds)


if __name__ == "__main__":
  main()
