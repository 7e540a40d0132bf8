"""The motion-model task on the shared training loop: first-order motion (Siarohin et al.,
2019) or, with `config.model.name == "tpsmm"`, thin-plate-spline motion (Zhao & Zhang, 2022).

Each example is a pair of frames of one video (`motion_pipeline.pair_iterator`): the
keypoint detector and generator learn to re-pose the *source* frame as the *driving*
frame. Losses, as the reference's GeneratorFullModel / DiscriminatorFullModel:
- perceptual pyramid: VGG19 features (relu1_1..relu5_1) of the prediction and the
  driving frame at every pyramid scale (`config.train.scales`); VGG weights come from
  the user file `config.loss.vgg_weights` (deepjax.models.vgg). Without one the loss is
  an honest multi-scale L1 on the image pyramids, and the task logs that it uses it.
- equivariance on keypoint values and Jacobians under a random TPS transform (the
  Jacobian of the transform from `jax.jacfwd`, in deepjax.ops.tps);
- optional GAN (`config.loss.generator_gan > 0`): LSGAN on a multi-scale patch
  discriminator plus feature matching; the discriminator is then updated in the same
  step (after the generator, on the detached prediction).

Optimisers: Adam (b1, b2 from `config.train`; deepjax.train.optim, optax.adam's maths
and state) per network (kp_detector, generator,
discriminator) with its own learning rate, multiplied by `train.lr_decay` at each of
`train.epoch_milestones`. The loop counts steps, not epochs: a milestone `m` falls at
step `round(m / train.num_epochs * config.num_steps)`.

State: `params` = {"kp_detector", "generator"[, "discriminator"]}; `model_state` the
same keys with {"batch_stats": ...} (BatchNorm statistics; spectral-norm vectors of the
discriminator); `opt_state` the same keys.

Thin-plate-spline motion (`deepjax.models.motion.tpsmm.generator_losses`): perceptual
pyramid, equivariance, warp loss, background loss from epoch `train.bg_start` (the
background predictor is updated from then on), TPS dropout on its schedule; no GAN.
Optimisers as the reference: Adam (lr_generator on the milestones, L2 weight decay
`train.weight_decay`) per network, gradients of kp_detector, dense_motion_network and
bg_predictor clipped to infinity-norm `train.clip_inf_norm`. `params` / `model_state` hold
every part of `TPSMM.parts` (the AVD network, trained separately by the reference, is
carried unchanged); `opt_state` the trained ones. The epoch of a step is
floor(step * train.num_epochs / num_steps).

Batches: {"source", "driving": uint8 (B, H, W, 3), "video": int64 (B,)}.
"""
import jax
import jax.numpy as jnp
import optax
from absl import logging

from deepjax import losses
from deepjax.models import vgg
from deepjax.models.motion import fomm as fomm_lib
from deepjax.models.motion import tpsmm as tpsmm_lib
from deepjax.models.motion.discriminator import build_discriminator
from deepjax.ops import keypoints as kpo
from deepjax.train import optim
from deepjax.train.state import TrainState
from deepjax.train.tasks.ae import image_grid, to_float

GEN_NETS = ("kp_detector", "generator")
TPSMM_NETS = ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor")
# The thin-plate-spline reference clips these networks' gradients (infinity norm).
TPSMM_CLIPPED = ("kp_detector", "dense_motion_network", "bg_predictor")


def lr_schedule(base_lr: float, train_cfg, num_steps: int):
  """Piecewise-constant learning rate: base_lr x lr_decay^(milestones passed).

  Milestones are epochs of `train_cfg.num_epochs`, mapped to steps of `num_steps`.
  """
  epochs = max(1, int(train_cfg.get("num_epochs", 1)))
  decay = float(train_cfg.get("lr_decay", 0.1))
  bounds = {}
  for m in train_cfg.get("epoch_milestones", ()):
    step = int(round(float(m) / epochs * num_steps))
    if 0 < step:
      bounds[step] = bounds.get(step, 1.0) * decay
  return optax.piecewise_constant_schedule(base_lr, bounds)


def optimizers(train_cfg, num_steps: int, adam=optim.adam):
  """{net: Adam} for kp_detector, generator and discriminator: each net's learning rate
  (`lr_<net>`) on `lr_schedule`, b1/b2/eps from `train_cfg` (eps: torch's and optax's default
  1e-8). `adam`: the constructor (deepjax.train.optim.adam, or optax.adam)."""
  b1, b2 = train_cfg.get("adam_b1", 0.5), train_cfg.get("adam_b2", 0.999)
  eps = float(train_cfg.get("adam_eps", 1e-8))
  return {k: adam(lr_schedule(train_cfg[f"lr_{k}"], train_cfg, num_steps), b1=b1, b2=b2, eps=eps)
          for k in ("kp_detector", "generator", "discriminator")}


def clip_by_inf_norm(max_norm: float) -> optax.GradientTransformation:
  """torch's clip_grad_norm_(norm_type=inf) on one network: all gradients times
  min(1, max_norm / (max |g| + 1e-6))."""
  def update(updates, state, params=None):
    del params
    norm = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(updates)]))
    coef = jnp.minimum(1.0, max_norm / (norm + 1e-6))
    return jax.tree.map(lambda g: g * coef, updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def tpsmm_optimizers(train_cfg, num_steps: int, nets, adam=optim.adam):
  """{net: optimiser} of thin-plate-spline motion (see the module docstring)."""
  b1, b2 = train_cfg.get("adam_b1", 0.5), train_cfg.get("adam_b2", 0.999)
  eps = float(train_cfg.get("adam_eps", 1e-8))
  wd, clip = float(train_cfg.get("weight_decay", 0.0)), float(train_cfg.get("clip_inf_norm", 0.0))
  lr = lr_schedule(train_cfg["lr_generator"], train_cfg, num_steps)
  out = {}
  for k in nets:
    parts = [clip_by_inf_norm(clip)] if clip and k in TPSMM_CLIPPED else []
    parts += [optax.add_decayed_weights(wd)] if wd else []
    out[k] = optax.chain(*parts, adam(lr, b1=b1, b2=b2, eps=eps))
  return out


class MotionTask:
  """Keypoint detector + occlusion-aware generator (+ optional discriminator)."""
  images_per_example = 1  # one generated frame per (source, driving) pair

  def __init__(self, config):
    self.config = config
    tc = config.train
    self.weights = dict(config.loss)
    self.use_gan = float(self.weights.get("generator_gan", 0.0) or 0.0) > 0
    self.tpsmm = config.model.get("name", "fomm") == "tpsmm"
    if self.tpsmm:
      if self.use_gan:
        raise ValueError("thin-plate-spline motion has no GAN terms (loss.generator_gan > 0)")
      self.model = tpsmm_lib.TPSMM.from_config(config.model)
      self.nets = tuple(k for k in TPSMM_NETS if k in self.model.parts)
      self.tx = tpsmm_optimizers(tc, int(config.num_steps), self.nets)
    else:
      self.fomm = self.model = fomm_lib.FOMM.from_config(config.model)
      self.nets = GEN_NETS
      self.tx = optimizers(tc, int(config.num_steps))
    self.disc = build_discriminator(config.model) if self.use_gan else None
    self.scales = tuple(float(s) for s in tc.scales)
    self.transform = dict(tc.transform)
    self.vgg = self._load_vgg(self.weights.get("vgg_weights", ""))

  def _load_vgg(self, path):
    if not sum(self.weights.get("perceptual", ())):
      return None
    return vgg.load_for_loss(path, "config.loss.vgg_weights",
                             "using the multi-scale L1 fallback on the image pyramid instead")

  # --- data -----------------------------------------------------------------
  def data_iterator(self, config, batch_size, seed, split):
    from deepjax.data import motion_pipeline  # pylint: disable=import-outside-toplevel
    return motion_pipeline.pair_iterator(config.data, batch_size, seed, split)

  # --- state ----------------------------------------------------------------
  def init(self, rng, batch) -> TrainState:
    k_model, k_disc, run_rng = jax.random.split(rng, 3)
    shape = batch["source"].shape
    variables = self.model.init(k_model, tuple(shape))
    params = {k: variables[k]["params"] for k in self.model.parts}
    model_state = {k: {"batch_stats": variables[k].get("batch_stats", {})}
                   for k in self.model.parts}
    if self.use_gan:
      pyr = fomm_lib.image_pyramid(jnp.zeros(shape, jnp.float32), self.disc.scales)
      kp = jnp.zeros((shape[0], self.config.model.num_kp, 2), jnp.float32)
      dv = self.disc.init(k_disc, pyr, kp, False)
      params["discriminator"] = dv["params"]
      model_state["discriminator"] = {"batch_stats": dv.get("batch_stats", {})}
    opt_state = {k: self.tx[k].init(v) for k, v in params.items() if k in self.tx}
    return TrainState.create(params, opt_state, run_rng, model_state)

  @staticmethod
  def variables(params, model_state, nets=GEN_NETS):
    """{net: {"params", "batch_stats"}} as deepjax.models.motion.fomm expects."""
    return {k: {"params": params[k], "batch_stats": model_state[k]["batch_stats"]} for k in nets}

  # --- losses ---------------------------------------------------------------
  def _disc_apply(self, disc_vars, image, kp_value, train):
    pyr = fomm_lib.image_pyramid(image, self.disc.scales)
    if train:
      out, upd = self.disc.apply(disc_vars, pyr, kp_value, True, mutable=["batch_stats"])
      return out, upd.get("batch_stats", {})
    return self.disc.apply(disc_vars, pyr, kp_value, False), disc_vars.get("batch_stats", {})

  def gan_generator_losses(self, disc_vars, prediction, driving, kp_driving):
    """LSGAN generator term and feature matching (weighted scalars)."""
    kp = kpo.detach_kp(kp_driving)["value"]
    fake, _ = self._disc_apply(disc_vars, prediction, kp, False)
    real, _ = self._disc_apply(disc_vars, driving, kp, False)
    gan = self.weights["generator_gan"] * losses.lsgan_g_loss(
        [fake[s][1] for s in self.disc.scales])
    fm = 0.0
    fm_w = tuple(self.weights.get("feature_matching", ()))
    for s in self.disc.scales:
      for i, (a, b) in enumerate(zip(real[s][0], fake[s][0])):
        if i < len(fm_w) and fm_w[i]:
          fm = fm + fm_w[i] * jnp.mean(jnp.abs(jax.lax.stop_gradient(a) - b))
    out = {"generator_gan": gan}
    if fm_w and sum(fm_w):
      out["feature_matching"] = fm
    return out

  def epoch(self, step):
    """The reference's epoch of a step: floor(step * train.num_epochs / num_steps)."""
    epochs = max(1, int(self.config.train.get("num_epochs", 1)))
    return step * epochs // max(1, int(self.config.num_steps))

  def generator_loss(self, params, model_state, batch, key, train=True, step=0):
    source, driving = to_float(batch["source"]), to_float(batch["driving"])
    variables = self.variables(params, model_state, self.model.parts)
    if self.tpsmm:
      total, (losses, generated, new_vars) = tpsmm_lib.generator_losses(
          self.model, variables, source, driving, key, self.epoch(step), self.weights,
          self.config.train, self.vgg, train)
    else:
      weights = dict(self.weights, generator_gan=0.0)
      total, (losses, generated, new_vars) = fomm_lib.generator_losses(
          self.fomm, variables, source, driving, key, weights, self.transform, self.scales,
          self.vgg, train)
    losses = dict(losses)
    if self.use_gan:
      disc_vars = {"params": jax.lax.stop_gradient(params["discriminator"]),
                   "batch_stats": model_state["discriminator"]["batch_stats"]}
      gan = self.gan_generator_losses(disc_vars, generated["prediction"], driving,
                                      generated["kp_driving"])
      losses.update(gan)
      total = total + sum(gan.values())
    new_state = {k: {"batch_stats": new_vars[k].get("batch_stats", {})}
                 for k in self.model.parts}
    return total, (losses, generated, new_state)

  def discriminator_loss(self, disc_params, disc_stats, prediction, driving, kp_driving):
    """LSGAN (deepjax.losses): weight * sum over scales of mean((D(real) - 1)^2) + mean(D(fake)^2);
    fake detached."""
    kp = kpo.detach_kp(kp_driving)["value"]
    dv = {"params": disc_params, "batch_stats": disc_stats}
    real, stats = self._disc_apply(dv, driving, kp, True)
    dv = {"params": disc_params, "batch_stats": stats}
    fake, stats = self._disc_apply(dv, jax.lax.stop_gradient(prediction), kp, True)
    w = float(self.weights.get("discriminator_gan", 1.0))
    loss = w * losses.lsgan_d_loss([real[s][1] for s in self.disc.scales],
                                   [fake[s][1] for s in self.disc.scales])
    return loss, stats

  # --- steps ----------------------------------------------------------------
  def train_step(self, state: TrainState, batch):
    key = state.step_key()
    gen_params = {k: state.params[k] for k in self.nets}
    other = {k: v for k, v in state.params.items() if k not in self.nets}

    def loss_fn(gp):
      return self.generator_loss(dict(other, **gp), state.model_state, batch, key,
                                 step=state.step)

    (total, (losses, generated, new_ms)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(gen_params)
    params, opt_state = dict(state.params), dict(state.opt_state)
    for k in self.nets:
      upd, opt_state[k] = self.tx[k].update(grads[k], state.opt_state[k], state.params[k])
      params[k] = optax.apply_updates(state.params[k], upd)
      if k == "bg_predictor":  # the reference steps it from epoch bg_start on
        on = self.epoch(state.step) >= self.config.train.get("bg_start", 0)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(on, a, b), new, old)  # noqa: E731,B023
        params[k], opt_state[k] = keep(params[k], state.params[k]), keep(opt_state[k],
                                                                        state.opt_state[k])
    model_state = dict(state.model_state, **new_ms)
    metrics = {f"loss_{k}": v for k, v in losses.items()}
    metrics["loss"] = total
    driving = to_float(batch["driving"])
    metrics["l1"] = jnp.mean(jnp.abs(generated["prediction"] - driving))
    if self.use_gan:
      (d_loss, d_stats), d_grads = jax.value_and_grad(self.discriminator_loss, has_aux=True)(
          state.params["discriminator"], state.model_state["discriminator"]["batch_stats"],
          generated["prediction"], driving, generated["kp_driving"])
      upd, opt_state["discriminator"] = self.tx["discriminator"].update(
          d_grads, state.opt_state["discriminator"], state.params["discriminator"])
      params["discriminator"] = optax.apply_updates(state.params["discriminator"], upd)
      model_state["discriminator"] = {"batch_stats": d_stats}
      metrics["loss_discriminator"] = d_loss
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=model_state)
    return new_state, metrics

  def eval_step(self, state: TrainState, batch):
    """Reconstruction of the driving frame (eval-mode BatchNorm): L1 and the loss terms."""
    total, (losses, generated, _) = self.generator_loss(
        state.params, state.model_state, batch, state.step_key(), train=False, step=state.step)
    driving = to_float(batch["driving"])
    out = {f"loss_{k}": v for k, v in losses.items()}
    out["loss"] = total
    out["l1"] = jnp.mean(jnp.abs(generated["prediction"] - driving))
    return out

  def reconstruct(self, state: TrainState, source, driving):
    """float (B,H,W,3) source and driving -> the generator's dict (eval mode)."""
    variables = self.variables(state.params, state.model_state, self.model.parts)
    if self.tpsmm:
      bg = self.model.bg_predictor is not None
      generated, _ = self.model.full_forward(
          variables, source, driving, train=False, use_bg=bg,
          bg_on=self.epoch(state.step) >= self.config.train.get("bg_start", 0))
      return generated
    generated, _ = self.fomm.full_forward(variables, source, driving, train=False)
    return generated

  def preview(self, state: TrainState, batch, max_rows: int = 6):
    """uint8 grid; columns source | driving | prediction | deformed source."""
    source = to_float(batch["source"][:max_rows])
    driving = to_float(batch["driving"][:max_rows])
    gen = self.reconstruct(state, source, driving)
    deformed = gen.get("deformed", jnp.zeros_like(source))
    if deformed.shape != source.shape:
      deformed = jax.image.resize(deformed, source.shape, "bilinear")
    return image_grid([source, driving, gen["prediction"], deformed])
