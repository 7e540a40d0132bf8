"""Speed of first-order-motion animation: frames per second of the jitted animation step.

`bench(config_name, batch, steps)` builds the model of `configs/<name>.py` (random weights;
arguments after ':' as on the command line, e.g. "fomm_vox256:res=64") and times the
animation step the way deepjax animates a clip: `batch` driving frames per jitted call,
each call detecting the driving keypoints, normalising them against the first frame
(`relative_motion`, vox-256's animate settings) and generating the frames from one source
image. Compilation is timed separately and excluded from frames/s.

  python -c "from deepjax.models.motion.fomm_bench import bench; print(bench('fomm_tiny', 8, 5))"
"""
import importlib.util
import os
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp

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
  detect = jax.jit(fomm.detect)
  kp_source = detect(variables, source)
  kp_initial = detect(variables, frames[:1])
  step = jax.jit(make_animate_step(fomm, norm))
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


def bench_train(config_name: str = "fomm_tiny", batch: int = 8, steps: int = 2,
                use_vgg: bool = True) -> Dict[str, Any]:
  """Seconds per generator training step: losses + gradients + Adam update, one jit.

  The step is the reference's generator/keypoint-detector update (perceptual pyramid with a
  random-weight VGG19 when `use_vgg`, as the CPU peer figures in PERF_NOTES; equivariance
  losses; generator_gan 0 as vox-256), without the discriminator update (which vox-256
  trains but does not use). Compilation is excluded and reported separately.
  """
  import optax  # pylint: disable=import-outside-toplevel

  from deepjax.models.motion.fomm import generator_losses  # pylint: disable=import-outside-toplevel
  from deepjax.models.vgg import random_vgg19_params  # pylint: disable=import-outside-toplevel

  config = load_config(config_name)
  size = config.data.size
  fomm = FOMM.from_config(config.model)
  variables = fomm.init(jax.random.key(0), (batch, size, size, 3))
  vgg = random_vgg19_params(jax.random.key(5)) if use_vgg else None
  tx = optax.adam(config.train.lr_generator, b1=config.train.adam_b1, b2=config.train.adam_b2)
  params = {k: variables[k]["params"] for k in ("kp_detector", "generator")}
  opt_state = tx.init(params)
  weights = dict(config.loss)
  transform = dict(config.train.transform)
  scales = tuple(config.train.scales)

  def step(params, opt_state, variables, source, driving, key):
    def loss_fn(p):
      v = {k: dict(variables[k], params=p[k]) for k in ("kp_detector", "generator")}
      total, (losses, _, new_v) = generator_losses(fomm, v, source, driving, key, weights,
                                                   transform, scales, vgg, True)
      return total, (losses, new_v)
    (total, (_, new_v)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, new_v, total

  k1, k2 = jax.random.split(jax.random.key(1))
  source = jax.random.uniform(k1, (batch, size, size, 3), jnp.float32)
  driving = jax.random.uniform(k2, (batch, size, size, 3), jnp.float32)
  jitted = jax.jit(step, donate_argnums=(0, 1))
  t0 = time.perf_counter()
  compiled = jitted.lower(params, opt_state, variables, source, driving,
                          jax.random.key(2)).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  times = []
  for i in range(steps + 1):
    t0 = time.perf_counter()
    params, opt_state, variables, total = compiled(params, opt_state, variables, source, driving,
                                                   jax.random.key(3 + i))
    total.block_until_ready()
    if i:  # the first call is a warm-up
      times.append(time.perf_counter() - t0)
  mean = sum(times) / len(times)
  return {"config": config_name, "size": size, "batch": batch, "steps": steps, "vgg": use_vgg,
          "s_per_step": mean, "s_per_step_best": min(times), "compile_s": compile_s,
          "gflop_per_step": flops / 1e9, "gflop_per_s": flops / mean / 1e9 if flops else 0.0,
          "loss": float(total), "device": str(jax.devices()[0].device_kind)}
