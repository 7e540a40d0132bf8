"""Where a thin-plate-spline-motion train step's time goes: each part's forward + backward
jitted and timed alone (rows `tpsmm_parts_64`, `tpsmm_parts_256`).

Parts (random weights; a random-weight VGG19 as `train_row(random_vgg=True)`): the keypoint
detector on the step's three inputs in its one batched call; the background predictor's two
calls (source -> driving and back); the dense motion network (TPS flows, hourglass,
occlusion masks) with TPS dropout on; the inpainting network given those motions; the VGG19
perceptual pyramid (forward of both images, backward of the prediction); and Adam over every
network's parameters. Per part: compile seconds, seconds per call (best of 5), GFLOP (XLA's
cost analysis) and GFLOP/s.
"""
import jax
import jax.numpy as jnp

from deepjax.bench.motion_parts import time_parts
from deepjax.bench.timing import Result, load_spec


def _sum_sin(tree) -> jax.Array:
  return sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(tree)
             if jnp.issubdtype(x.dtype, jnp.floating))


def _parts(cfg, batch: int) -> tuple[dict, dict]:
  """-> ({part: (gradient function, args)}, every network's parameters)."""
  # pylint: disable=import-outside-toplevel
  from deepjax.models.motion.fomm import perceptual_pyramid_loss
  from deepjax.models.motion.tpsmm import TPSMM
  from deepjax.models.vgg import random_vgg19_params
  # pylint: enable=import-outside-toplevel
  size = int(cfg.data.size)
  model = TPSMM.from_config(cfg.model)
  v = model.init(jax.random.key(0), (batch, size, size, 3))
  img = jax.random.uniform(jax.random.key(1), (batch, size, size, 3))
  img2 = jax.random.uniform(jax.random.key(2), (batch, size, size, 3))
  vgg = random_vgg19_params(jax.random.key(5))
  kp_s, kp_d = model.detect(v, img), model.detect(v, img2)
  bg = model.bg_motion(v, img, img2)[0] if model.bg_predictor is not None else None
  uniform = jax.random.uniform(jax.random.key(3), (batch, model.dense_motion_network.num_tps + 1))

  def with_params(name, p):
    return dict(v[name], params=p)

  def kp_loss(p, images):
    kps, _ = model.apply_kp_detector_many(dict(v, kp_detector=with_params("kp_detector", p)),
                                          images, True)
    return _sum_sin(kps)

  def bg_loss(p, a, b):
    vv = dict(v, bg_predictor=with_params("bg_predictor", p))
    return _sum_sin(model.bg_motion(vv, a, b, True)[0]) + _sum_sin(
        model.bg_motion(vv, b, a, True)[0])

  def dense_motion(p, image):
    return model.dense_motion_network.apply(
        with_params("dense_motion_network", p), image, kp_d, kp_s, bg, dropout_p=0.1,
        dropout_uniform=uniform)

  motion = dense_motion(v["dense_motion_network"]["params"], img)

  def inpaint_loss(p, image):
    out = model.inpainting_network.apply(with_params("inpainting_network", p), image, motion)
    return _sum_sin(out["prediction"])

  scales, weights = tuple(cfg.train.scales), tuple(cfg.loss.perceptual)
  parts = {
      "kp_detector_3_batched": (jax.grad(kp_loss), (v["kp_detector"]["params"],
                                                    [img, img2, img])),
      "dense_motion": (jax.grad(lambda p, x: _sum_sin(dense_motion(p, x))),
                       (v["dense_motion_network"]["params"], img)),
      "inpainting": (jax.grad(inpaint_loss), (v["inpainting_network"]["params"], img)),
      "vgg19_pyramid": (jax.grad(lambda p, t: perceptual_pyramid_loss(vgg, p, t, scales,
                                                                      weights)), (img, img2)),
  }
  if bg is not None:
    parts["bg_predictor_x2"] = (jax.grad(bg_loss), (v["bg_predictor"]["params"], img, img2))
  params = {k: v[k]["params"] for k in model.parts}
  return parts, params


def parts_row(config: str = "tpsmm_vox256", batch: int = 2) -> Result:
  """Compile seconds, seconds, GFLOP and GFLOP/s of each part (in `extra`)."""
  cfg = load_spec(config)
  parts, params = _parts(cfg, batch)
  return time_parts(parts, params, cfg, batch, config)
