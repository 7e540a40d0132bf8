"""Speed of per-channel sums: XLA's reduce against `reductions.channel_sum` (row
`reductions` of `deepjax bench`).

For activation shapes of the first-order motion model, milliseconds per sum over
(B, H, W) of a (B, H, W, C) float32 array, both jitted the way deepjax compiles
(`compile_options.jit`), best of 20 calls.
"""
import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.bench.timing import Result, time_calls
from deepjax.ops.reductions import channel_sum

SHAPES = ((8, 64, 64, 128), (8, 32, 32, 256), (2, 256, 256, 64), (2, 128, 128, 128),
          (8, 16, 16, 512))


def reductions_row(repeats: int = 20) -> Result:
  """Per shape (in `extra`): best ms of the plain reduce and of `channel_sum`."""
  plain = compile_options.jit(lambda x: jnp.sum(x, axis=(0, 1, 2)))
  fast = compile_options.jit(channel_sum)
  rows = []
  for shape in SHAPES:
    x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    rows.append({"shape": list(shape),
                 "reduce_ms": 1e3 * time_calls(plain, x, repeats=repeats).best,
                 "channel_sum_ms": 1e3 * time_calls(fast, x, repeats=repeats).best})
  speedup = [r["reduce_ms"] / r["channel_sum_ms"] for r in rows]
  return Result(note=f"channel_sum {min(speedup):.1f}-{max(speedup):.1f}x faster than reduce",
                extra={"shapes": rows, "speedup_min": min(speedup),
                       "speedup_max": max(speedup)})
