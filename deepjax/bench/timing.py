"""The result schema of every benchmark row and the one timing helper they all use.

`Result` is what every row function returns (`deepjax bench` writes `dataclasses.asdict`
of it as JSON and prints its columns); `time_calls` times repeated calls after untimed
warm-up calls; `matmul_peak` is the `matmul` row (the machine's dense f32 matmul GFLOP/s,
the peak every row is compared with).
"""
from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp


@dataclasses.dataclass
class Result:
  """One benchmark row.

  Attributes:
    row: the registry name (`deepjax.bench.registry.ROWS`); `registry.run_row` sets it.
    batch: items per timed call (images, frame pairs, frames), or None.
    compile_s: seconds to compile (or the first call's extra time), or None.
    step_s: seconds per timed call (the row's note says when it is not the median).
    images_per_s: items per second (images, frames).
    gflops: GFLOP/s (XLA's cost analysis of the compiled function / step_s).
    peak_rss_mb: the process's peak resident memory, MB (`registry.run_row` fills it).
    note: one line: what was timed and any figure the columns do not hold.
    extra: any further figures (JSON-serialisable), e.g. per-case tables.
  """
  row: str = ""
  batch: Optional[int] = None
  compile_s: Optional[float] = None
  step_s: Optional[float] = None
  images_per_s: Optional[float] = None
  gflops: Optional[float] = None
  peak_rss_mb: Optional[float] = None
  note: str = ""
  extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Timing:
  """Wall and process-CPU seconds of the timed calls, wall seconds of the untimed warm-up
  calls, and the last call's result."""
  seconds: tuple
  cpu_seconds: tuple
  warmup_seconds: tuple
  last: Any

  @property
  def best(self) -> float:
    return min(self.seconds)

  @property
  def median(self) -> float:
    return statistics.median(self.seconds)

  @property
  def mean(self) -> float:
    return statistics.mean(self.seconds)


def time_calls(fn: Callable, *args, repeats: int = 5, warmup: int = 1,
               carry: int = 0) -> Timing:
  """Calls fn(*args) `warmup` times untimed, then `repeats` times timed; every call is
  waited for (`jax.block_until_ready` of its result).

  carry: when > 0, fn returns a tuple whose first `carry` items replace the first `carry`
  arguments of the next call (a donated train state: fn(state, batch) -> (state, metrics)
  with carry=1; an optimiser update (params, opt_state, grads) -> (params, opt_state)
  with carry=2).
  """
  args = list(args)
  last = None

  def call():
    nonlocal last
    last = jax.block_until_ready(fn(*args))
    if carry:
      args[:carry] = last[:carry]

  warm = []
  for _ in range(warmup):
    t = time.perf_counter()
    call()
    warm.append(time.perf_counter() - t)
  walls, cpus = [], []
  for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    call()
    walls.append(time.perf_counter() - t)
    cpus.append(time.process_time() - c)
  return Timing(tuple(walls), tuple(cpus), tuple(warm), last)


def compile_timed(jitted, *args):
  """-> (compiled, compile seconds, FLOPs per call) of a jitted function for `args`."""
  t = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - t, flops_of(compiled)


def flops_of(compiled) -> float:
  """FLOPs per call of a compiled function (XLA's cost analysis; 0 when unknown)."""
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):
    ca = ca[0]
  return float(ca.get("flops", 0.0)) if ca else 0.0


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_spec(spec: str):
  """'name[:arg]' (as the programs' --config=configs/name.py:arg) -> the config."""
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  name, _, arg = spec.partition(":")
  return load_config(name, arg or None)


def matmul_peak(n: int = 2048, repeats: int = 10) -> Result:
  """Best-of-`repeats` dense f32 (n, n) @ (n, n) GFLOP/s under XLA on this machine."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  t = time_calls(jax.jit(lambda x, y: x @ y), a, b, repeats=repeats)
  return Result(step_s=t.best, gflops=2 * n ** 3 / t.best / 1e9,
                note=f"f32 {n}x{n} matmul, best of {repeats}", extra={"n": n})
