"""Speed of first-order-motion training: images/s of MotionTask's jitted train step.

`bench_train(config_arg, batch, steps)` builds `configs/<name>.py` (arguments after ':' as
on the command line, e.g. "fomm_vox256:res=64"), random frames of the config's size, and
times `MotionTask.train_step` (jit, donated state: keypoint detector + generator update
with the config's losses; the discriminator update too when loss.generator_gan > 0).
Compilation is timed separately. Animation frames/s: `deepjax.models.motion.fomm_bench.bench`
(re-exported here as `bench_animate`).

  python -c "from deepjax.train.tasks.motion_bench import bench_train; print(bench_train('fomm_tiny', 8, 3))"
"""
import time
from typing import Any, Dict

import jax
import numpy as np

from deepjax import compile_options
from deepjax.benchmarks import flops_of
from deepjax.models.motion.fomm_bench import bench as bench_animate  # noqa: F401
from deepjax.models.motion.fomm_bench import load_config


def bench_train(config_arg: str = "fomm_tiny", batch: int = 8, steps: int = 3,
                random_vgg: bool = False) -> Dict[str, Any]:
  """Train images/s (one generated frame per pair) of `config_arg` at `batch` pairs per step.

  `random_vgg`: when the config names no VGG19 file, use a random-weight VGG19 for the
  perceptual pyramid (the same work as with real weights; how PERF_NOTES' PyTorch peer
  figures were measured) instead of the multi-scale L1 fallback.
  """
  from deepjax.models.vgg import random_vgg19_params  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks.motion import MotionTask  # pylint: disable=import-outside-toplevel
  config = load_config(config_arg)
  size = int(config.data.size)
  task = MotionTask(config)
  if random_vgg and task.vgg is None:
    task.vgg = random_vgg19_params(jax.random.key(5))
  rng = np.random.default_rng(0)
  data = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
          for k in ("source", "driving")}
  state = compile_options.jit(task.init)(jax.random.key(0), data)
  step = compile_options.jit(task.train_step, donate_argnums=(0,))
  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - t0
  flops = flops_of(compiled)
  state, metrics = compiled(state, data)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  mean = sum(times) / len(times)
  return {"config": config_arg, "size": size, "batch": batch, "steps": steps,
          "gan": task.use_gan, "vgg": task.vgg is not None,
          "images_per_s": batch / mean, "s_per_step": mean, "s_per_step_best": min(times),
          "compile_s": compile_s, "gflop_per_step": flops / 1e9,
          "gflop_per_s": flops / mean / 1e9 if flops else 0.0, "loss": float(metrics["loss"]),
          "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend()}
