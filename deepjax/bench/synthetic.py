"""Speed of the synthetic face renderer: `bench(size, n)` -> dict (a `deepjax.bench` row).

By default the process is pinned to one CPU core (`os.sched_setaffinity`) while it renders,
so the figure is frames/s on one core whatever XLA's thread pool size; the CPU-time figure
(`frames_per_s_cpu`) is robust to other processes sharing that core.

    python -c "from deepjax.bench.synthetic import bench; print(bench())"
"""
import os
import resource
import time

import numpy as np

from deepjax.data import synthetic as syn


def bench(size: int = 64, n: int = 2000, one_core: bool = True, repeats: int = 3) -> dict:
  """Renders n frames of n different identities with random motion, `repeats` times.

  Returns frames/s (wall and CPU time; host-side work included), the first call's extra
  time (compilation), landmark-only throughput and identity sampling rate.
  """
  old_affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
  if one_core and old_affinity:
    os.sched_setaffinity(0, {min(old_affinity)})
  try:
    t = time.perf_counter()
    idents = [syn.sample_identity(s) for s in range(n)]
    sample_s = time.perf_counter() - t
    ident = syn.stack_identities(idents)
    motion = syn.sample_motion(0, n)
    t = time.perf_counter()
    images, _ = syn.render(ident, motion, size)
    first_s = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(repeats):
      t, c = time.perf_counter(), time.process_time()
      images, _ = syn.render(ident, motion, size)
      walls.append(time.perf_counter() - t)
      cpus.append(time.process_time() - c)
    syn.landmarks(ident, motion)
    t = time.perf_counter()
    syn.landmarks(ident, motion)
    lm_s = time.perf_counter() - t
  finally:
    if one_core and old_affinity:
      os.sched_setaffinity(0, old_affinity)
  best = min(walls)
  return {
      "row": f"synthetic render {size}px" + (" (1 core)" if one_core else ""),
      "batch": n,
      "size": size,
      "compile_s": max(first_s - best, 0.0),
      "step_s": best,
      "images_per_s": n / best,
      "frames_per_s": n / best,
      "frames_per_s_cpu": n / min(cpus),
      "landmarks_per_s": n / lm_s,
      "identities_per_s": n / sample_s,
      "mean_pixel": float(np.mean(images)),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
      "note": f"cpu-time {n / min(cpus):.0f} frames/s",
  }


if __name__ == "__main__":
  print(bench())
