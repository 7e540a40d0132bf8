"""Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022), for training and inference.

`TPSMM` holds the Flax modules (built from `config.model`, see configs/tpsmm_vox256.py) and
works on a variables dict with the reference checkpoint's parts (separate, as the reference
saves them): {"kp_detector", "dense_motion_network", "inpainting_network"} plus
"bg_predictor" (with `bg`) and "avd_network" (with an `avd` section), each
{"params"[, "batch_stats"]}.

  model = TPSMM.from_config(config.model)
  variables = model.init(jax.random.key(0), (1, 256, 256, 3))
  kp_source = model.detect(variables, source_1xHxWx3)
  kp_driving = model.detect(variables, frames_TxHxWx3)
  kp_norm = relative_motion(kp_source, kp_driving, kp_initial, adapt_movement_scale=True,
                            use_relative_movement=True)       # deepjax.ops.keypoints
  # or kp_norm = model.avd(variables, kp_source, kp_driving)   (the reference's "avd" mode)
  frames = model.animate(variables, source_1xHxWx3, kp_source, kp_norm)["prediction"]

Keypoints are {"value": (B, num_tps*5, 2)} (the reference's `fg_kp`). The reference's
grid_sample and resizes use align_corners=True throughout; so does this model.
"""
import dataclasses
import functools
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from deepjax.models.motion.fomm import detector_many, perceptual_pyramid_loss
from deepjax.models.motion.tps_dense_motion import (BGMotionPredictor, TPSDenseMotionNetwork,
                                                    TPSKeypointDetector)
from deepjax.models.motion.tps_inpainting import AVDNetwork, InpaintingNetwork
from deepjax.ops import keypoints as kpo
from deepjax.ops import tps

Variables = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class TPSMM:
  """The modules of the thin-plate-spline motion model (None: not in this config)."""
  kp_detector: TPSKeypointDetector
  dense_motion_network: TPSDenseMotionNetwork
  inpainting_network: InpaintingNetwork
  bg_predictor: Optional[BGMotionPredictor] = None
  avd_network: Optional[AVDNetwork] = None

  @classmethod
  def from_config(cls, model_cfg: Mapping[str, Any]) -> "TPSMM":
    """Builds the modules from `config.model` (fields as configs/tpsmm_vox256.py)."""
    m = dict(model_cfg)
    num_tps, channels = int(m["num_tps"]), int(m["num_channels"])
    multi_mask = bool(m.get("multi_mask", True))
    dense = TPSDenseMotionNetwork(num_tps=num_tps, num_channels=channels,
                                  bg=bool(m.get("bg", False)), multi_mask=multi_mask,
                                  **dict(m["dense_motion"]))
    inpainting = InpaintingNetwork(num_channels=channels, multi_mask=multi_mask,
                                   **dict(m["generator"]))
    avd_cfg = m.get("avd")
    avd = AVDNetwork(num_tps=num_tps, **dict(avd_cfg)) if avd_cfg else None
    bg = BGMotionPredictor() if m.get("bg", False) else None
    return cls(TPSKeypointDetector(num_tps), dense, inpainting, bg, avd)

  @property
  def parts(self) -> Tuple[str, ...]:
    """Names of the variables' parts (the reference checkpoint's keys)."""
    names = ["kp_detector", "dense_motion_network", "inpainting_network"]
    if self.bg_predictor is not None:
      names.append("bg_predictor")
    if self.avd_network is not None:
      names.append("avd_network")
    return tuple(names)

  def init(self, key, image_shape: Tuple[int, int, int, int],
           parts: Optional[Sequence[str]] = None) -> Variables:
    """Random variables for images of shape (B, H, W, C): all parts, or `parts` only."""
    parts = tuple(self.parts if parts is None else parts)
    b = image_shape[0]
    kp = {"value": jnp.zeros((b, self.kp_detector.num_tps * 5, 2), jnp.float32)}
    bg_param = None if self.bg_predictor is None else jnp.broadcast_to(jnp.eye(3), (b, 3, 3))

    def init_fn(key):
      keys = dict(zip(("kp_detector", "dense_motion_network", "inpainting_network",
                       "bg_predictor", "avd_network"), jax.random.split(key, 5)))
      image = jnp.zeros(image_shape, jnp.float32)
      out = {}
      if "kp_detector" in parts:
        out["kp_detector"] = self.kp_detector.init(keys["kp_detector"], image)
      if "bg_predictor" in parts:
        out["bg_predictor"] = self.bg_predictor.init(keys["bg_predictor"], image, image)
      dense = self.dense_motion_network
      dense_init = lambda k: dense.init_with_output(k, image, kp, kp, bg_param)  # noqa: E731
      if "dense_motion_network" in parts:
        motion, out["dense_motion_network"] = dense_init(keys["dense_motion_network"])
      else:
        motion = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                              jax.eval_shape(dense_init, keys["dense_motion_network"])[0])
      if "inpainting_network" in parts:
        out["inpainting_network"] = self.inpainting_network.init(keys["inpainting_network"],
                                                                 image, motion)
      if "avd_network" in parts:
        out["avd_network"] = self.avd_network.init(keys["avd_network"], kp, kp)
      return {k: dict(v) for k, v in out.items()}
    return jax.jit(init_fn)(key)

  def init_shapes(self, image_shape: Tuple[int, int, int, int]) -> Variables:
    """`jax.ShapeDtypeStruct`s of the variables (no computation; cached per model and shape)."""
    return _init_shapes(self, tuple(image_shape))

  def apply_kp_detector_many(self, variables: Variables, images: Sequence[jax.Array],
                             train: bool = False):
    """The detector on several batches in one call (see `FOMM.apply_kp_detector_many`)."""
    return detector_many(self.kp_detector, variables["kp_detector"], images, train)

  def detect(self, variables: Variables, image_BxHxWxC) -> Dict[str, jax.Array]:
    """Keypoints (inference): {"value": (B, num_tps*5, 2)}."""
    return self.kp_detector.apply(variables["kp_detector"], image_BxHxWxC, False)

  def bg_motion(self, variables: Variables, source, driving, train: bool = False):
    """Background affine (B, 3, 3) driving -> source, and updated bg_predictor variables."""
    v = variables["bg_predictor"]
    if not train:
      return self.bg_predictor.apply(v, source, driving, False), v
    out, updates = self.bg_predictor.apply(v, source, driving, True, mutable=["batch_stats"])
    return out, dict(v, **updates)

  def generate(self, variables: Variables, source_BxHxWxC, kp_source, kp_driving,
               bg_param=None, dropout_p: Any = 0.0, dropout_key=None,
               source_features=None) -> Dict[str, Any]:
    """Dense motion + inpainting: the inpainting network's dict (+ "deformation").

    Both networks use instance norm only (no running statistics): the same in training.
    `dropout_key`: TPS dropout with probability `dropout_p` (training).
    """
    uniform = None
    if dropout_key is not None:
      uniform = jax.random.uniform(dropout_key, (source_BxHxWxC.shape[0],
                                                 self.dense_motion_network.num_tps + 1))
    motion = self.dense_motion_network.apply(
        variables["dense_motion_network"], source_BxHxWxC, kp_driving, kp_source, bg_param,
        dropout_p=dropout_p, dropout_uniform=uniform)
    out = self.inpainting_network.apply(variables["inpainting_network"], source_BxHxWxC,
                                        motion, source_features)
    return dict(out, deformation=motion["deformation"])

  def avd(self, variables: Variables, kp_source, kp_driving) -> Dict[str, jax.Array]:
    """The reference's "avd" animation: driving pose on the source identity (inference)."""
    if self.avd_network is None:
      raise ValueError("this TPSMM config has no AVD network (config.model.avd)")
    b = kp_driving["value"].shape[0]
    return self.avd_network.apply(variables["avd_network"], kpo.broadcast_kp(kp_source, b)
                                  if kp_source["value"].shape[0] == 1 else kp_source,
                                  kp_driving, False)

  def animate(self, variables: Variables, source_BxHxWxC, kp_source, kp_driving
              ) -> Dict[str, Any]:
    """Generates the source in the driving poses (inference, no background motion, as the
    reference's demo), batched over frames.

    Args:
      source_BxHxWxC: (1 or T, H, W, C) float32 in [0, 1].
      kp_source: kp dict with leading 1 or T.
      kp_driving: kp dict with leading T (e.g. from `relative_motion` or `avd`).
    Returns:
      the generator's dict; "prediction" is (T, H, W, C).
    """
    t = kp_driving["value"].shape[0]
    features = None
    if source_BxHxWxC.shape[0] == 1 and t > 1:
      # One source for all frames: encode it once (instance norm is per sample).
      features = self.inpainting_network.apply(variables["inpainting_network"],
                                               source_BxHxWxC,
                                               method=InpaintingNetwork.encode)
      features = [jnp.broadcast_to(f, (t,) + f.shape[1:]) for f in features]
    source = jnp.broadcast_to(source_BxHxWxC, (t,) + source_BxHxWxC.shape[1:])
    return self.generate(variables, source, kpo.broadcast_kp(kp_source, t), kp_driving,
                         source_features=features)

  def reconstruct(self, variables: Variables, source_BxHxWxC, driving_BxHxWxC):
    """The driving frames from the sources with absolute keypoints and the background
    affine when the model has one (inference), (B, H, W, C): the reference's
    reconstruction.py."""
    kp_s = self.detect(variables, source_BxHxWxC)
    kp_d = self.detect(variables, driving_BxHxWxC)
    bg = None
    if self.bg_predictor is not None:
      bg = self.bg_motion(variables, source_BxHxWxC, driving_BxHxWxC)[0]
    return self.generate(variables, source_BxHxWxC, kp_s, kp_d, bg)["prediction"]

  def full_forward(self, variables: Variables, source, driving, train: bool = True,
                   transformed=None, use_bg: bool = False, dropout_p: Any = 0.0,
                   dropout_key=None, bg_on: Any = True):
    """Reconstruction of `driving` from `source` (the reference's training forward pass).

    The detector runs on source, driving and (when given) the equivariance-transformed
    driving batch in one batched call; the background predictor on (source, driving) when
    `use_bg`, its affine used where `bg_on` (a traced bool: the reference's epoch >=
    bg_start; the identity otherwise, which equals no background motion). Returns
    (generated, new_variables): generated holds the inpainting outputs, "kp_source",
    "kp_driving", "bg_param" (with use_bg) and "transformed_kp".
    """
    images = [source, driving] + ([] if transformed is None else [transformed])
    kps, kp_vars = self.apply_kp_detector_many(variables, images, train)
    variables = dict(variables, kp_detector=kp_vars)
    bg_param = None
    if use_bg:
      bg_param, bg_vars = self.bg_motion(variables, source, driving, train)
      bg_param = jnp.where(bg_on, bg_param, jnp.eye(3, dtype=bg_param.dtype)[None])
      variables = dict(variables, bg_predictor=bg_vars)
    generated = self.generate(variables, source, kps[0], kps[1], bg_param, dropout_p,
                              dropout_key)
    generated = dict(generated, kp_source=kps[0], kp_driving=kps[1])
    if bg_param is not None:
      generated["bg_param"] = bg_param
    if transformed is not None:
      generated = dict(generated, transformed_frame=transformed, transformed_kp=kps[2])
    return generated, variables


@functools.lru_cache(maxsize=8)
def _init_shapes(model: TPSMM, image_shape: Tuple[int, int, int, int]) -> Variables:
  return jax.eval_shape(lambda key: model.init(key, image_shape), jax.random.key(0))


def warp_loss(model: TPSMM, variables: Variables, driving_BxHxWxC, generated) -> jax.Array:
  """The reference's warp loss (unweighted): sum over levels of mean |occluded encoder map of
  the driving frame - warped, occluded encoder map of the source| (gradient through the
  flow only)."""
  encode = model.inpainting_network.apply(variables["inpainting_network"], driving_BxHxWxC,
                                          generated["occlusion_map"],
                                          method=InpaintingNetwork.get_encode)
  decode = generated["warped_encoder_maps"]
  return sum(jnp.mean(jnp.abs(e - decode[-i - 1])) for i, e in enumerate(encode))


def bg_loss(bg_param_Bx3x3, bg_param_reverse_Bx3x3) -> jax.Array:
  """The reference's background loss (unweighted): mean |I - A(s, d) A(d, s)|."""
  prod = jnp.matmul(bg_param_Bx3x3, bg_param_reverse_Bx3x3)
  return jnp.mean(jnp.abs(jnp.eye(3, dtype=prod.dtype)[None] - prod))


def generator_losses(model: TPSMM, variables: Variables, source, driving, key, epoch,
                     loss_weights: Mapping[str, Any], train_cfg: Mapping[str, Any],
                     vgg_params=None, train: bool = True):
  """The reference's GeneratorFullModel at `epoch` (int or traced).

  Perceptual pyramid (`fomm.perceptual_pyramid_loss`, scales `train_cfg["scales"]`),
  equivariance of the keypoints under a random TPS (`train_cfg["transform"]`, the "tpsmm"
  basis, align_corners=True), warp loss, and from `bg_start` the background affine and its
  loss; TPS dropout by `dropout_schedule` (training only).
  Args: source, driving (B, H, W, C) float32 [0, 1]; key: RNG key.
  Returns: (total, (weighted losses dict, generated, new_variables)).
  """
  k_tps, k_drop = jax.random.split(key)
  w_equi = loss_weights.get("equivariance_value", 0)
  transformed = params = None
  if w_equi:
    t = train_cfg["transform"]
    params = tps.tps_sample_params(k_tps, driving.shape[0], t["sigma_affine"],
                                   t.get("sigma_tps"), t.get("points_tps"))
    transformed = tps.tps_transform_frame(params, driving, True, "tpsmm")
  use_bg = model.bg_predictor is not None
  bg_on = epoch >= train_cfg.get("bg_start", 0)
  _, drop_p = dropout_schedule(epoch, train_cfg)
  generated, variables = model.full_forward(
      variables, source, driving, train, transformed, use_bg, drop_p,
      k_drop if train else None, bg_on)
  losses = {}
  if sum(loss_weights["perceptual"]):
    losses["perceptual"] = perceptual_pyramid_loss(
        vgg_params, generated["prediction"], driving, tuple(train_cfg["scales"]),
        loss_weights["perceptual"])
  if w_equi:
    losses["equivariance_value"] = w_equi * tps.equivariance_value_loss(
        params, generated["kp_driving"]["value"], generated["transformed_kp"]["value"], "tpsmm")
  if loss_weights.get("warp_loss", 0):
    losses["warp_loss"] = loss_weights["warp_loss"] * warp_loss(model, variables, driving,
                                                                generated)
  if use_bg and loss_weights.get("bg", 0):
    reverse, bg_vars = model.bg_motion(variables, driving, source, train)
    variables = dict(variables, bg_predictor=bg_vars)
    losses["bg"] = jnp.where(bg_on, loss_weights["bg"] * bg_loss(generated["bg_param"],
                                                                 reverse), 0.0)
  total = sum(losses.values()) if losses else jnp.zeros((), jnp.float32)
  return total, (losses, generated, variables)


def dropout_schedule(epoch, train_cfg: Mapping[str, Any]) -> Tuple[Any, Any]:
  """(on, p) of TPS dropout at `epoch` (int or traced): on before `dropout_epoch`, with
  p = min(epoch / dropout_inc_epoch * dropout_maxp + dropout_startp, dropout_maxp)."""
  on = epoch < train_cfg["dropout_epoch"]
  p = jnp.minimum(epoch / train_cfg["dropout_inc_epoch"] * train_cfg["dropout_maxp"]
                  + train_cfg["dropout_startp"], train_cfg["dropout_maxp"])
  return on, jnp.where(on, p, 0.0)
