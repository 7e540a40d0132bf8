"""Speed of the synthetic face renderer (row `synthetic` of `deepjax bench`).

By default the process is pinned to one CPU core (`os.sched_setaffinity`) while it renders,
so the figure is frames/s on one core whatever XLA's thread pool size; the CPU-time figure
(`extra["frames_per_s_cpu"]`) is robust to other processes sharing that core.
"""
import contextlib
import os

import numpy as np

from deepjax.bench.timing import Result, time_calls
from deepjax.data import synthetic as syn


@contextlib.contextmanager
def _one_core(enabled: bool):
  """Pins this process to its lowest CPU while inside (where the OS allows it)."""
  old = os.sched_getaffinity(0) if enabled and hasattr(os, "sched_getaffinity") else None
  if old:
    os.sched_setaffinity(0, {min(old)})
  try:
    yield
  finally:
    if old:
      os.sched_setaffinity(0, old)


def synthetic_row(size: int = 64, n: int = 2000, one_core: bool = True,
                  repeats: int = 3) -> Result:
  """Renders n frames of n different identities with random motion, `repeats` times after
  one warm-up render: best seconds per render (host-side work included), the warm-up's
  extra time (compilation), CPU-time frames/s, landmark-only and identity sampling rates.
  """
  with _one_core(one_core):
    sample = time_calls(lambda: [syn.sample_identity(s) for s in range(n)], repeats=1,
                        warmup=0)
    ident = syn.stack_identities(sample.last)
    motion = syn.sample_motion(0, n)
    render = time_calls(syn.render, ident, motion, size, repeats=repeats, warmup=1)
    landmarks = time_calls(syn.landmarks, ident, motion, repeats=1, warmup=1)
  best = render.best
  cpu_fps = n / min(render.cpu_seconds)
  return Result(
      batch=n, compile_s=max(render.warmup_seconds[0] - best, 0.0), step_s=best,
      images_per_s=n / best,
      note=f"synthetic render {size}px" + (" (1 core)" if one_core else "")
           + f", cpu-time {cpu_fps:.0f} frames/s",
      extra={"size": size, "frames_per_s_cpu": cpu_fps,
             "landmarks_per_s": n / landmarks.best, "identities_per_s": n / sample.best,
             "mean_pixel": float(np.mean(render.last[0]))})
