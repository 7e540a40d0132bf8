"""Speed of per-channel sums: XLA's reduce against `reductions.channel_sum`.

  python -m deepjax.bench.reductions

Prints, for activation shapes of the first-order motion model, milliseconds per sum over
(B, H, W) of a (B, H, W, C) float32 array, both jitted the way deepjax compiles
(`compile_options.jit`), best of 20 calls. `bench()` returns the same as a dict (the
`reductions` row of `deepjax bench`).
"""
from typing import Any, Dict

import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.bench.timing import best_seconds
from deepjax.ops.reductions import channel_sum

SHAPES = ((8, 64, 64, 128), (8, 32, 32, 256), (2, 256, 256, 64), (2, 128, 128, 128),
          (8, 16, 16, 512))


def _best_ms(fn, x, reps: int = 20) -> float:
  return 1e3 * best_seconds(fn, x, repeats=reps)


def bench() -> Dict[str, Any]:
  plain = compile_options.jit(lambda x: jnp.sum(x, axis=(0, 1, 2)))
  fast = compile_options.jit(channel_sum)
  rows = []
  for shape in SHAPES:
    x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    rows.append({"shape": list(shape), "reduce_ms": _best_ms(plain, x),
                 "channel_sum_ms": _best_ms(fast, x)})
  speedup = [r["reduce_ms"] / r["channel_sum_ms"] for r in rows]
  return {"row": "reductions", "shapes": rows, "speedup_min": min(speedup),
          "speedup_max": max(speedup),
          "note": f"channel_sum {min(speedup):.1f}-{max(speedup):.1f}x faster than reduce"}


if __name__ == "__main__":
  for r in bench()["shapes"]:
    print(f"{str(tuple(r['shape'])):<22} reduce {r['reduce_ms']:7.2f} ms   channel_sum "
          f"{r['channel_sum_ms']:6.2f} ms   x{r['reduce_ms'] / r['channel_sum_ms']:.1f}")
