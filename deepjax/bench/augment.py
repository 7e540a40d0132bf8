"""The jitted augmentation of the swap models (row `augment` of `deepjax bench`)."""
import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.bench.timing import Result, time_calls
from deepjax.ops.augment import AUGMENT_DEFAULTS, augment_pair


def augment_row(size: int = 128, batch: int = 32, steps: int = 20) -> Result:
  """`augment_pair` with the default settings on a (batch, size, size, 3) batch: median
  seconds per call (after one warm-up call, whose time is compile_s)."""
  images = jax.random.uniform(jax.random.key(0), (batch, size, size, 3), jnp.float32)
  fn = compile_options.jit(lambda k, x: augment_pair(k, x, AUGMENT_DEFAULTS))
  t = time_calls(fn, jax.random.key(1), images, repeats=steps, warmup=1)
  return Result(batch=batch, compile_s=t.warmup_seconds[0], step_s=t.median,
                images_per_s=batch / t.median, note=f"augment_pair {size}px")
