"""Where a first-order-motion train step's time goes: each part's forward + backward
jitted and timed alone (row `fomm_parts_64`).

Parts (random weights; a random-weight VGG19 as `train_row(random_vgg=True)`): one
keypoint-detector call (train mode); the step's three detector inputs (source, driving,
transformed driving) as its one batched call with per-call BatchNorm statistics
(`FOMM.apply_kp_detector_many`); the generator with dense motion; the VGG19 perceptual
pyramid (forward of both images, backward of the prediction); and Adam over both
networks' parameters (donated, as in the step). Per part: compile seconds, seconds per call
(best of 5), GFLOP (XLA's cost analysis) and GFLOP/s (`time_parts`).
"""
import time

import jax
import jax.numpy as jnp

from deepjax import compile_options
from deepjax.bench.adam import time_update
from deepjax.bench.timing import Result, flops_of, load_spec, time_calls


def _parts(cfg, batch: int) -> tuple[dict, dict]:
  """-> ({part: (gradient function, args)}, the two networks' parameters)."""
  # pylint: disable=import-outside-toplevel
  from deepjax.models.motion.fomm import FOMM, perceptual_pyramid_loss
  from deepjax.models.vgg import random_vgg19_params
  # pylint: enable=import-outside-toplevel
  size = int(cfg.data.size)
  fomm = FOMM.from_config(cfg.model)
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

  scales = tuple(cfg.train.scales)
  weights = tuple(cfg.loss.perceptual)
  parts = {
      "kp_detector_x1": (jax.grad(kp_loss), (v["kp_detector"]["params"], img)),
      "kp_detector_3_batched": (jax.grad(kp_loss_many), (v["kp_detector"]["params"],
                                                         [img, img2, img])),
      "generator_with_dense_motion": (jax.grad(gen_loss), (v["generator"]["params"], img)),
      "vgg19_pyramid": (jax.grad(lambda p, t: perceptual_pyramid_loss(vgg, p, t, scales,
                                                                      weights)), (img, img2)),
  }
  params = {"kp_detector": v["kp_detector"]["params"], "generator": v["generator"]["params"]}
  return parts, params


def time_parts(parts: dict, params, cfg, batch: int, config: str) -> Result:
  """The row of a motion model's parts: each jitted part's compile seconds, seconds per call
  (best of 5), GFLOP and GFLOP/s, and Adam (the task's b1) over `params`."""
  from deepjax.train import optim  # pylint: disable=import-outside-toplevel
  extra = {"config": config}
  for name, (fn, args) in parts.items():
    t0 = time.perf_counter()
    compiled = compile_options.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    s = time_calls(compiled, *args).best
    gflop = flops_of(compiled) / 1e9
    extra[name] = {"s": s, "compile_s": compile_s, "gflop": gflop, "gflop_per_s": gflop / s}
  tx = optim.adam(1e-4, b1=float(cfg.train.get("adam_b1", 0.5)))  # the task's optimiser
  extra["adam"] = {"s": time_update(tx, params, params),
                   "params_m": sum(x.size for x in jax.tree.leaves(params)) / 1e6}
  note = ", ".join(f"{k} {extra[k]['s']:.2f} s" for k in (*parts, "adam"))
  return Result(batch=batch, note=note, extra=extra)


def parts_row(config: str = "fomm_vox256:res=64", batch: int = 8) -> Result:
  """Seconds and GFLOP of each part (in `extra`; the note lists the seconds)."""
  cfg = load_spec(config)
  parts, params = _parts(cfg, batch)
  return time_parts(parts, params, cfg, batch, config)
