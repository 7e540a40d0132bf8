"""Same-process A/B of the first-order motion train step: now vs. without two formulations
(row `fomm_ab_64` of `deepjax bench`).

"before" is MotionTask's step with optax.adam instead of deepjax.train.optim.adam and the
keypoint detector called three times (source, driving, transformed driving) instead of
once on the three batches (`FOMM.apply_kp_detector_many`); "now" is the step as it is.
Both are the same maths (tests/test_optim.py, tests/test_motion_models.py). Their
compiled steps run alternately, `rounds` times each, in one process, so that the
machine's speed drifting over minutes (a shared 2-core CPU varies by ~10 %) hits both
alike; separate benchmark runs of the two could not tell a 2-5 % difference apart.
Random frames, batch 8, a random-weight VGG19 (as `train_row(random_vgg=True)`).
"""
import statistics

import jax
import numpy as np
import optax

from deepjax import compile_options
from deepjax.bench.timing import Result, load_spec, time_calls
from deepjax.models.motion.fomm import FOMM
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


def ab_row(config: str = "fomm_vox256:res=64", batch: int = 8, rounds: int = 8) -> Result:
  """Seconds per step of "before" and "now", alternating; medians, means and their ratio.
  step_s is the median of "now"."""
  from deepjax.bench.train import random_batch_for  # pylint: disable=import-outside-toplevel
  cfg = load_spec(config)
  now = motion.MotionTask(cfg)
  if now.vgg is None:
    now.vgg = random_vgg19_params(jax.random.key(5))
  tasks = {"before": _before(now, cfg), "now": now}
  data = random_batch_for(cfg, batch, np.random.default_rng(0))
  steps, states = {}, {}
  for name, task in tasks.items():
    states[name] = compile_options.jit(task.init)(jax.random.key(0), data)
    fn = compile_options.jit(task.train_step, donate_argnums=(0,))
    steps[name] = fn.lower(states[name], data).compile()
    states[name] = time_calls(steps[name], states[name], data, repeats=0, carry=1).last[0]
  times = {name: [] for name in tasks}
  for _ in range(rounds):
    for name in tasks:
      t = time_calls(steps[name], states[name], data, repeats=1, warmup=0, carry=1)
      states[name] = t.last[0]
      times[name].extend(t.seconds)
  extra = {"config": config, "rounds": rounds}
  for name, ts in times.items():
    extra[f"{name}_median_s"] = statistics.median(ts)
    extra[f"{name}_mean_s"] = statistics.mean(ts)
  ratio = extra["before_over_now"] = extra["before_median_s"] / extra["now_median_s"]
  return Result(batch=batch, step_s=extra["now_median_s"], extra=extra,
                note=f"median s/step before {extra['before_median_s']:.3f}, now "
                     f"{extra['now_median_s']:.3f} ({ratio:.3f}x)")
