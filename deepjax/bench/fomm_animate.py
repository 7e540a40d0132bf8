"""Speed of first-order-motion animation: frames per second of the jitted animation step.

`bench(config_name, batch, steps)` builds the model of `configs/<name>.py` (random weights;
arguments after ':' as on the command line, e.g. "fomm_vox256:res=64") and times the
animation step the way deepjax animates a clip: `batch` driving frames per jitted call,
each call detecting the driving keypoints, normalising them against the first frame
(`relative_motion`, vox-256's animate settings) and generating the frames from one source
image. Compilation is timed separately and excluded from frames/s.

  python -c "from deepjax.bench.fomm_animate import bench; print(bench('fomm_tiny', 8, 5))"
"""
import importlib.util
import os
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.errors import UserError
from deepjax.models.motion.fomm import FOMM
from deepjax.ops import keypoints as kpo

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "configs")


def load_config(spec: str):
  """'name[:arg]' -> configs/name.py get_config(arg)."""
  name, _, arg = spec.partition(":")
  path = os.path.join(_CONFIG_DIR, name + ".py")
  if not os.path.isfile(path):
    raise UserError(f"config not found: {path}")
  module_spec = importlib.util.spec_from_file_location("deepjax_bench_" + name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def make_animate_step(fomm: FOMM, norm: Dict[str, bool]):
  """jit-able (variables, source (1,H,W,3), kp_source, kp_initial, frames (T,H,W,3)) -> (T,H,W,3)."""
  def step(variables, source, kp_source, kp_initial, frames):
    kp_driving = fomm.detect(variables, frames)
    kp_norm = kpo.relative_motion(kp_source, kp_driving, kp_initial, **norm)
    return fomm.animate(variables, source, kp_source, kp_norm)["prediction"]
  return step


def bench(config_name: str = "fomm_tiny", batch: int = 8, steps: int = 3) -> Dict[str, Any]:
  """Animation frames/s of `config_name` with `batch` frames per call, over `steps` calls."""
  config = load_config(config_name)
  size = config.data.size
  fomm = FOMM.from_config(config.model)
  variables = fomm.init(jax.random.key(0), (1, size, size, 3))
  k1, k2 = jax.random.split(jax.random.key(1))
  source = jax.random.uniform(k1, (1, size, size, 3), jnp.float32)
  frames = jax.random.uniform(k2, (batch, size, size, 3), jnp.float32)
  norm = dict(config.animate)
  detect = compile_options.jit(fomm.detect)
  kp_source = detect(variables, source)
  kp_initial = detect(variables, frames[:1])
  step = compile_options.jit(make_animate_step(fomm, norm))
  t0 = time.perf_counter()
  compiled = step.lower(variables, source, kp_source, kp_initial, frames).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  compiled(variables, source, kp_source, kp_initial, frames).block_until_ready()  # warm-up
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    compiled(variables, source, kp_source, kp_initial, frames).block_until_ready()
    times.append(time.perf_counter() - t0)
  best = min(times)
  mean = sum(times) / len(times)
  return {
      "config": config_name, "size": size, "frames_per_call": batch, "calls": steps,
      "frames_per_s": batch / mean, "frames_per_s_best": batch / best,
      "ms_per_frame": 1000.0 * mean / batch, "compile_s": compile_s,
      "gflop_per_frame": flops / batch / 1e9,
      "gflop_per_s": flops / mean / 1e9 if flops else 0.0,
      "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
  }

