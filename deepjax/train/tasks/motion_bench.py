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

from deepjax.models.motion.fomm_bench import bench as bench_animate  # noqa: F401
from deepjax.models.motion.fomm_bench import load_config


def bench_train(config_arg: str = "fomm_tiny", batch: int = 8, steps: int = 3) -> Dict[str, Any]:
  """Train images/s (one generated frame per pair) of `config_arg` at `batch` pairs per step."""
  from deepjax.train.tasks.motion import MotionTask  # pylint: disable=import-outside-toplevel
  config = load_config(config_arg)
  size = int(config.data.size)
  task = MotionTask(config)
  rng = np.random.default_rng(0)
  data = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
          for k in ("source", "driving")}
  state = jax.jit(task.init)(jax.random.key(0), data)
  step = jax.jit(task.train_step, donate_argnums=(0,))
  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - t0
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
          "compile_s": compile_s, "loss": float(metrics["loss"]),
          "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend()}
