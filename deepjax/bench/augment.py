"""Benchmark row for `deepjax bench`: the jitted augmentation of the swap models."""
import time

import jax
import jax.numpy as jnp

from deepjax.ops.augment import AUGMENT_DEFAULTS, augment_pair


def bench_augment(size: int = 128, batch: int = 32, steps: int = 20) -> dict:
  """Benchmark row for `deepjax bench`: jitted `augment_pair` (default config).

  Returns a row dict: "row", "batch", "compile_s", "step_s", "images_per_s".
  """
  images = jax.random.uniform(jax.random.key(0), (batch, size, size, 3), jnp.float32)
  fn = jax.jit(lambda k, x: augment_pair(k, x, AUGMENT_DEFAULTS))
  t0 = time.perf_counter()
  jax.block_until_ready(fn(jax.random.key(1), images))
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(steps):
    out = fn(jax.random.key(i), images)
  jax.block_until_ready(out)
  step_s = (time.perf_counter() - t0) / steps
  return {"row": f"augment_pair {size}px", "batch": batch, "compile_s": compile_s,
          "step_s": step_s, "images_per_s": batch / step_s}
