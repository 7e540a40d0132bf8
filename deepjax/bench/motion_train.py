"""Speed of first-order-motion training: images/s of MotionTask's jitted train step.

`bench_train(config_arg, batch, steps)` builds `configs/<name>.py` (arguments after ':' as
on the command line, e.g. "fomm_vox256:res=64"), random frames of the config's size, and
times `MotionTask.train_step` (jit, donated state: keypoint detector + generator update
with the config's losses; the discriminator update too when loss.generator_gan > 0).
Compilation is timed separately. Animation frames/s: `deepjax.bench.fomm_animate.bench`
(re-exported here as `bench_animate`).

  python -c "from deepjax.bench.motion_train import bench_train; print(bench_train('fomm_tiny', 8, 3))"
"""
import time
from typing import Any, Dict

import jax
import numpy as np

from deepjax import compile_options
from deepjax.bench.timing import best_seconds, flops_of
from deepjax.bench.fomm_animate import bench as bench_animate  # noqa: F401
from deepjax.bench.fomm_animate import load_config


def bench_train(config_arg: str = "fomm_tiny", batch: int = 8, steps: int = 3,
                random_vgg: bool = False) -> Dict[str, Any]:
  """Train images/s (one generated frame per pair) of `config_arg` at `batch` pairs per step.

  `random_vgg`: when the config names no VGG19 file, use a random-weight VGG19 for the
  perceptual pyramid (the same work as with real weights; how PERF_NOTES' PyTorch peer
  figures were measured) instead of the multi-scale L1 fallback.
  """
  from deepjax.models.vgg import random_vgg19_params  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks.motion import MotionTask  # pylint: disable=import-outside-toplevel
  config = load_config(config_arg)
  size = int(config.data.size)
  task = MotionTask(config)
  if random_vgg and task.vgg is None:
    task.vgg = random_vgg19_params(jax.random.key(5))
  rng = np.random.default_rng(0)
  data = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
          for k in ("source", "driving")}
  state = compile_options.jit(task.init)(jax.random.key(0), data)
  step = compile_options.jit(task.train_step, donate_argnums=(0,))
  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - t0
  flops = flops_of(compiled)
  state, metrics = compiled(state, data)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  mean = sum(times) / len(times)
  return {"config": config_arg, "size": size, "batch": batch, "steps": steps,
          "gan": task.use_gan, "vgg": task.vgg is not None,
          "images_per_s": batch / mean, "s_per_step": mean, "s_per_step_best": min(times),
          "compile_s": compile_s, "gflop_per_step": flops / 1e9,
          "gflop_per_s": flops / mean / 1e9 if flops else 0.0, "loss": float(metrics["loss"]),
          "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend()}


def bench_parts(config_arg: str = "fomm_vox256:res=64", batch: int = 8) -> Dict[str, Any]:
  """Where a train step's time goes: each part's forward + backward jitted and timed alone.

  Parts (random weights; a random-weight VGG19 as `bench_train(random_vgg=True)`): one
  keypoint-detector call (train mode), the step's three (source, driving, transformed
  driving) as its one batched call with per-call BatchNorm statistics
  (`FOMM.apply_kp_detector_many`), the generator with dense motion, the VGG19 perceptual pyramid (forward of
  both images, backward of the prediction) and Adam over both networks' parameters
  (donated, as in the step). Seconds and GFLOP (XLA's cost analysis) per part.
  """
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from deepjax.train import optim  # pylint: disable=import-outside-toplevel
  from deepjax.models.motion.fomm import FOMM, perceptual_pyramid_loss  # pylint: disable=import-outside-toplevel
  from deepjax.models.vgg import random_vgg19_params  # pylint: disable=import-outside-toplevel
  config = load_config(config_arg)
  size = int(config.data.size)
  fomm = FOMM.from_config(config.model)
  v = fomm.init(jax.random.key(0), (batch, size, size, 3))
  img = jax.random.uniform(jax.random.key(1), (batch, size, size, 3))
  img2 = jax.random.uniform(jax.random.key(2), (batch, size, size, 3))
  vgg = random_vgg19_params(jax.random.key(5))
  kp_s = fomm.detect(v, img)
  kp_d = fomm.detect(v, img2)

  def kp_loss(p, image):
    kp, _ = fomm.apply_kp_detector(dict(v, kp_detector=dict(v["kp_detector"], params=p)),
                                   image, True)
    return jnp.sum(jnp.sin(kp["value"])) + jnp.sum(jnp.sin(kp["jacobian"]))

  def kp_loss_many(p, images):
    kps, _ = fomm.apply_kp_detector_many(
        dict(v, kp_detector=dict(v["kp_detector"], params=p)), images, True)
    return sum(jnp.sum(jnp.sin(kp["value"])) + jnp.sum(jnp.sin(kp["jacobian"])) for kp in kps)

  def gen_loss(p, image):
    out, _ = fomm.apply_generator(dict(v, generator=dict(v["generator"], params=p)),
                                  image, kp_s, kp_d, True)
    return jnp.sum(jnp.sin(out["prediction"]))

  scales = tuple(config.train.scales)
  weights = tuple(config.loss.perceptual)
  parts = {
      "kp_detector_x1": (jax.grad(kp_loss), (v["kp_detector"]["params"], img)),
      "kp_detector_3_batched": (jax.grad(kp_loss_many), (v["kp_detector"]["params"],
                                                         [img, img2, img])),
      "generator_with_dense_motion": (jax.grad(gen_loss), (v["generator"]["params"], img)),
      "vgg19_pyramid": (jax.grad(lambda p, t: perceptual_pyramid_loss(vgg, p, t, scales,
                                                                      weights)), (img, img2)),
  }
  out = {"config": config_arg, "batch": batch}
  for name, (fn, args) in parts.items():
    jitted = compile_options.jit(fn)
    out[name] = {"s": best_seconds(jitted, *args),
                 "gflop": flops_of(jitted.lower(*args).compile()) / 1e9}
  params = {"kp_detector": v["kp_detector"]["params"], "generator": v["generator"]["params"]}
  tx = optim.adam(1e-4, b1=float(config.train.get("adam_b1", 0.5)))  # the task's optimiser

  def adam(p, s, g):
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s

  step = compile_options.jit(adam, donate_argnums=(0, 1))
  state = (jax.tree.map(jnp.copy, params), tx.init(params))
  state = step(*state, params)
  times = []
  for _ in range(5):
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state = step(*state, params)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
  out["adam"] = {"s": min(times), "params_m": sum(x.size for x in jax.tree.leaves(params)) / 1e6}
  out["note"] = ", ".join(f"{k} {out[k]['s']:.2f} s" for k in (*parts, "adam"))
  return out


if __name__ == "__main__":
  import json  # pylint: disable=import-outside-toplevel
  print(json.dumps(bench_parts(), indent=2))
