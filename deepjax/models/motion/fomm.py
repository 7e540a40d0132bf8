"""First-order motion model: keypoint detector + generator, for training and inference.

`FOMM` holds the two Flax modules (built from `config.model`, see configs/fomm_vox256.py)
and works on a variables dict `{"kp_detector": {"params", "batch_stats"},
"generator": {"params", "batch_stats"}}` (separate, as the reference trains and
checkpoints them with separate optimisers).

  fomm = FOMM.from_config(config.model)
  variables = fomm.init(jax.random.key(0), (1, 256, 256, 3))
  kp_source = fomm.detect(variables, source_1xHxWx3)
  kp_driving = fomm.detect(variables, frames_TxHxWx3)
  kp_norm = relative_motion(kp_source, kp_driving, kp_initial, ...)   # deepjax.ops.keypoints
  frames = fomm.animate(variables, source_1xHxWx3, kp_source, kp_norm)["prediction"]

Training: `generator_losses(fomm, variables, source, driving, key, ...)` is the
reference's GeneratorFullModel without its GAN terms (perceptual pyramid + equivariance)
and returns the updated BatchNorm statistics; the GAN terms (generator LSGAN, feature
matching) and the discriminator's loss are in deepjax.train.tasks.motion, which adds them.

Coordinates and grid_sample convention: see deepjax.ops.keypoints (keypoints) and
`align_corners` in the model config (False = what the reference code does under
torch >= 1.3, including its pinned torch 1.7.1; the published checkpoints were trained
under torch 1.0, whose grid_sample behaved as True).
"""
import dataclasses
from typing import Any, Dict, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.models.hourglass import anti_alias_interpolate
from deepjax.models.motion.generator import OcclusionAwareGenerator
from deepjax.models.motion.keypoint_detector import KeypointDetector
from deepjax.models.vgg import vgg19_features
from deepjax.ops import keypoints as kpo
from deepjax.ops import tps

Variables = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class FOMM:
  """The keypoint detector and the generator of the first-order motion model."""
  kp_detector: KeypointDetector
  generator: OcclusionAwareGenerator

  @classmethod
  def from_config(cls, model_cfg: Mapping[str, Any]) -> "FOMM":
    """Builds both modules from `config.model` (fields as configs/fomm_vox256.py)."""
    m = dict(model_cfg)
    common = dict(num_kp=m["num_kp"], num_channels=m["num_channels"])
    kp = KeypointDetector(estimate_jacobian=m["estimate_jacobian"], **common,
                          **dict(m["kp_detector"]))
    gen = OcclusionAwareGenerator(estimate_jacobian=m["estimate_jacobian"],
                                  align_corners=m.get("align_corners", False),
                                  dense_motion_params=dict(m["dense_motion"]), **common,
                                  **dict(m["generator"]))
    return cls(kp, gen)

  @property
  def parts(self) -> Tuple[str, ...]:
    """Names of the variables' parts."""
    return ("kp_detector", "generator")

  def init(self, key, image_shape: Tuple[int, int, int, int]) -> Variables:
    """Random variables for images of shape (B, H, W, C)."""
    def init_fn(key):
      k_kp, k_gen = jax.random.split(key)
      image = jnp.zeros(image_shape, jnp.float32)
      kp_vars = self.kp_detector.init(k_kp, image)
      kp = self.kp_detector.apply(kp_vars, image)
      gen_vars = self.generator.init(k_gen, image, kp, kp)
      return {"kp_detector": dict(kp_vars), "generator": dict(gen_vars)}
    return jax.jit(init_fn)(key)

  def init_shapes(self, image_shape: Tuple[int, int, int, int]) -> Variables:
    """`jax.ShapeDtypeStruct`s of the variables (no computation)."""
    return jax.eval_shape(lambda key: self.init(key, tuple(image_shape)), jax.random.key(0))

  def apply_kp_detector(self, variables: Variables, image, train: bool = False):
    """Returns (kp dict, updated kp_detector variables) (unchanged when not training)."""
    v = variables["kp_detector"]
    if not train:
      return self.kp_detector.apply(v, image, False), v
    kp, updates = self.kp_detector.apply(v, image, True, mutable=["batch_stats"])
    return kp, dict(v, **updates)

  def apply_kp_detector_many(self, variables: Variables, images: Sequence[jax.Array],
                             train: bool = False):
    """The detector on several batches (B, H, W, C) in one call, as len(images) calls in order.

    Training: the batches are interleaved into one (row b*G + g = images[g][b]; under a
    sharded batch every device keeps its rows) and BatchNorm keeps their statistics apart
    and updates its running averages with them in order, so the keypoints, gradients and
    statistics equal those of separate calls (tests/test_motion_models.py) at one call's
    cost for the small maps. Returns ([kp dict per batch], updated kp_detector variables).
    """
    return detector_many(self.kp_detector, variables["kp_detector"], images, train)

  def apply_generator(self, variables: Variables, source, kp_source, kp_driving,
                      train: bool = False, source_features=None):
    """Returns (generated dict, updated generator variables)."""
    v = variables["generator"]
    if not train:
      return self.generator.apply(v, source, kp_driving, kp_source, False, source_features), v
    out, updates = self.generator.apply(v, source, kp_driving, kp_source, True,
                                        mutable=["batch_stats"])
    return out, dict(v, **updates)

  def detect(self, variables: Variables, image_BxHxWxC) -> Dict[str, jax.Array]:
    """Keypoints (inference): {"value": (B, K, 2), "jacobian": (B, K, 2, 2)}."""
    return self.apply_kp_detector(variables, image_BxHxWxC)[0]

  def animate(self, variables: Variables, source_BxHxWxC, kp_source, kp_driving
              ) -> Dict[str, jax.Array]:
    """Generates the source in the driving poses (inference), batched over frames.

    Args:
      source_BxHxWxC: (1 or T, H, W, C) float32 in [0, 1].
      kp_source: kp dict with leading 1 or T.
      kp_driving: kp dict with leading T (e.g. from `relative_motion`).
    Returns:
      the generator's dict; "prediction" is (T, H, W, C).
    """
    t = kp_driving["value"].shape[0]
    features = None
    if source_BxHxWxC.shape[0] == 1 and t > 1:
      # One source for all frames: encode it once (eval-mode BatchNorm is per sample).
      features = self.generator.apply(variables["generator"], source_BxHxWxC,
                                      method=OcclusionAwareGenerator.encode)
      features = jnp.broadcast_to(features, (t,) + features.shape[1:])
    source = jnp.broadcast_to(source_BxHxWxC, (t,) + source_BxHxWxC.shape[1:])
    return self.apply_generator(variables, source, kpo.broadcast_kp(kp_source, t),
                                kp_driving, source_features=features)[0]

  def reconstruct(self, variables: Variables, source_BxHxWxC, driving_BxHxWxC):
    """The driving frames from the sources with absolute keypoints (inference), (B, H, W, C):
    the reference's reconstruction protocol."""
    kp_s = self.detect(variables, source_BxHxWxC)
    kp_d = self.detect(variables, driving_BxHxWxC)
    return self.apply_generator(variables, source_BxHxWxC, kp_s, kp_d)[0]["prediction"]

  def full_forward(self, variables: Variables, source, driving, train: bool = True,
                   transformed=None):
    """Reconstruction of `driving` from `source` (the training forward pass).

    Returns (generated, new_variables): generated holds the generator outputs plus
    "kp_source" and "kp_driving" (and "transformed_kp" when `transformed`, the driving
    batch under the equivariance transform, is given); new_variables carries updated
    BatchNorm statistics (the detector runs on the source, the driving batch, then the
    transformed one, as the reference: one batched call, `apply_kp_detector_many`).
    """
    images = [source, driving] + ([] if transformed is None else [transformed])
    kps, kp_vars = self.apply_kp_detector_many(variables, images, train)
    variables = dict(variables, kp_detector=kp_vars)
    kp_source, kp_driving = kps[0], kps[1]
    generated, gen_vars = self.apply_generator(variables, source, kp_source, kp_driving, train)
    generated = dict(generated, kp_source=kp_source, kp_driving=kp_driving)
    if transformed is not None:
      generated = dict(generated, transformed_frame=transformed, transformed_kp=kps[2])
    return generated, dict(variables, generator=gen_vars)


def detector_many(detector, detector_vars, images: Sequence[jax.Array], train: bool):
  """`FOMM.apply_kp_detector_many` for any detector module called as
  (image, train, groups) -> kp dict: returns ([kp dict per batch], updated variables)."""
  groups = len(images)
  b = images[0].shape[0]
  stacked = jnp.stack(images, axis=1).reshape((b * groups,) + images[0].shape[1:])
  v = detector_vars
  if train:
    kp, updates = detector.apply(v, stacked, True, groups, mutable=["batch_stats"])
    v = dict(v, **updates)
  else:
    kp = detector.apply(v, stacked, False)
  split = {k: x.reshape((b, groups) + x.shape[1:]) for k, x in kp.items()}
  return [{k: x[:, g] for k, x in split.items()} for g in range(groups)], v


def image_pyramid(image_BxHxWxC, scales: Sequence[float]) -> Dict[float, jax.Array]:
  """{scale: anti-aliased downscale} (the reference's ImagePyramide)."""
  return {s: anti_alias_interpolate(image_BxHxWxC, s) for s in scales}


def perceptual_pyramid_loss(vgg_params, prediction, target, scales: Sequence[float],
                            weights: Sequence[float] = (10.0,) * 5):
  """The reference's perceptual loss, or an honest pixel fallback without VGG weights.

  With `vgg_params` (deepjax.models.vgg): sum over scales s and VGG19 layers i of
  weights[i] * mean |vgg_i(P_s(prediction)) - vgg_i(P_s(target))| (target features carry
  no gradient). With `vgg_params=None`: sum over scales of mean(weights) *
  mean |P_s(prediction) - P_s(target)| (multi-scale L1 on the image pyramids); callers
  should log that the fallback is in use.

  Args: images (B, H, W, 3) float32 in [0, 1]. Returns a float32 scalar.
  """
  if vgg_params is not None:
    smallest = min(int(min(prediction.shape[1:3]) * s) for s in scales)
    if smallest < 16:
      raise ValueError(f"VGG19 needs pyramid images of at least 16 px; scales {tuple(scales)} "
                       f"of {prediction.shape[1:3]} give {smallest} px")
  pyr_p = image_pyramid(prediction, scales)
  pyr_t = image_pyramid(jax.lax.stop_gradient(target), scales)
  total = jnp.zeros((), jnp.float32)
  if vgg_params is None:
    w = float(np.mean(weights))
    for s in scales:
      total = total + w * jnp.mean(jnp.abs(pyr_p[s] - pyr_t[s]))
    return total
  for s in scales:
    fp = vgg19_features(vgg_params, pyr_p[s])
    ft = vgg19_features(vgg_params, pyr_t[s])
    for i, w in enumerate(weights):
      if w:
        total = total + w * jnp.mean(jnp.abs(fp[i] - jax.lax.stop_gradient(ft[i])))
  return total


def generator_losses(fomm: FOMM, variables: Variables, source, driving, key,
                     loss_weights: Mapping[str, Any], transform_params: Mapping[str, Any],
                     scales: Sequence[float], vgg_params=None, train: bool = True):
  """The reference's GeneratorFullModel without GAN terms (deepjax.train.tasks.motion adds them).

  Args:
    source, driving: (B, H, W, C) float32 in [0, 1].
    key: RNG key for the random TPS transform.
    loss_weights: perceptual (5 weights), equivariance_value, equivariance_jacobian
      (generator_gan must be 0 here).
    transform_params: sigma_affine, sigma_tps, points_tps.
    scales: pyramid scales, e.g. (1, 0.5, 0.25, 0.125).
  Returns:
    (total, (loss_values dict of weighted scalars, generated, new_variables)).
  """
  if loss_weights.get("generator_gan", 0):
    raise ValueError("generator_gan > 0: the GAN terms are the training task's "
                     "(deepjax.train.tasks.motion); pass generator_gan=0 here")
  w_val = loss_weights.get("equivariance_value", 0)
  w_jac = loss_weights.get("equivariance_jacobian", 0)
  transformed = None
  if w_val or w_jac:
    params = tps.tps_sample_params(key, driving.shape[0], transform_params["sigma_affine"],
                                   transform_params.get("sigma_tps"),
                                   transform_params.get("points_tps"))
    transformed = tps.tps_transform_frame(params, driving, fomm.generator.align_corners)
  generated, variables = fomm.full_forward(variables, source, driving, train, transformed)
  losses = {}
  if sum(loss_weights["perceptual"]):
    losses["perceptual"] = perceptual_pyramid_loss(vgg_params, generated["prediction"], driving,
                                                   scales, loss_weights["perceptual"])
  if transformed is not None:
    kp_t = generated["transformed_kp"]
    kp_d = generated["kp_driving"]
    if w_val:
      losses["equivariance_value"] = w_val * tps.equivariance_value_loss(
          params, kp_d["value"], kp_t["value"])
    if w_jac:
      losses["equivariance_jacobian"] = w_jac * tps.equivariance_jacobian_loss(
          params, kp_t["value"], kp_d["jacobian"], kp_t["jacobian"])
  total = sum(losses.values()) if losses else jnp.zeros((), jnp.float32)
  return total, (losses, generated, variables)
