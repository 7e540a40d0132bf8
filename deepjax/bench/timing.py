"""Benchmark rows for `deepjax bench`. Each row runs in its own process
(honest peak RSS and compile time) and returns a dict.

Rows:
- matmul: the machine's dense f32 matmul GFLOP/s (the peak every row is compared with).
- train:<config>:<arg>: one task's train step on random data of the config's
  shapes: compile seconds, step seconds, images/s, GFLOP/s (XLA cost analysis of
  the compiled step / measured step time).
- Other rows register in ROWS (synthetic renderer, extraction, animation, ...).
"""
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak(n: int = 2048, reps: int = 10) -> dict:
  """Best-of-reps dense f32 matmul GFLOP/s under XLA on this machine."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  f(a, b).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return {"row": "matmul", "n": n, "gflops": 2 * n ** 3 / best / 1e9}


def flops_of(compiled) -> float:
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):
    ca = ca[0]
  return float(ca.get("flops", 0.0)) if ca else 0.0


def best_seconds(fn, *args, repeats: int = 5) -> float:
  """Fastest of `repeats` timed calls of fn(*args), after one untimed call (compile, warm-up)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def print_row(fn, *args) -> None:
  """Prints fn(*args) (a benchmark's result dict) as JSON; bad input (UserError) exits with
  a one-line error. For the `main` of a benchmark module run with `python -m`."""
  import json  # pylint: disable=import-outside-toplevel
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  try:
    print(json.dumps(fn(*args), indent=2))
  except UserError as e:
    raise SystemExit(f"error: {e}") from None


def time_steps(fn, state, batch, steps: int):
  """Median seconds per call of fn(state, batch) -> (state, metrics); donates state."""
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, metrics = fn(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
  return statistics.median(times), state


def random_batch_for(task, config, batch_size: int, rng: np.random.Generator):
  """A random host batch of the shapes `task` expects (no data pipeline involved)."""
  if hasattr(task, "random_batch"):
    return task.random_batch(config, batch_size, rng)
  s = int(config.data.size)
  batch = {}
  for ident in ("a", "b"):
    batch[ident] = rng.integers(0, 256, (batch_size, s, s, 3), dtype=np.uint8)
    batch[f"{ident}_landmarks"] = rng.uniform(-0.6, 0.6, (batch_size, 68, 2)).astype(np.float32)
    batch[f"{ident}_has_landmarks"] = np.ones((batch_size,), bool)
  return batch


def train_row(config_name: str, arg: str, batch_size: int | None = None, steps: int = 3) -> dict:
  """Compile and time one train step of `configs/<config_name>.py:<arg>`."""
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  from deepjax.train import loop, parallel  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks import build_task  # pylint: disable=import-outside-toplevel
  config = load_config(config_name, arg)
  bs = batch_size or int(config.batch_size)
  task = build_task(config)
  mesh = parallel.make_mesh()
  batch = parallel.to_global(random_batch_for(task, config, bs, np.random.default_rng(0)), mesh)
  state, _, state_sharding = loop.init_state(task, config, mesh, batch)
  step = loop.compile_train_step(task, state_sharding, parallel.batch_sharding(mesh),
                                 parallel.replicated(mesh))
  t = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t
  flops = flops_of(compiled)
  state, m = compiled(state, batch)  # first call (warm-up)
  jax.block_until_ready(m)
  step_s, _ = time_steps(compiled, state, batch, steps)
  images = bs * getattr(task, "images_per_example", 1)
  return {"row": f"train {config_name}:{arg}", "batch": bs, "compile_s": compile_s,
          "step_s": step_s, "images_per_s": images / step_s, "gflops": flops / step_s / 1e9,
          "peak_rss_mb": peak_rss_mb()}
