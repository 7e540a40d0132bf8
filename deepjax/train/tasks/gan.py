"""The face-swap GAN task: masked autoencoder + one patch discriminator per identity.

Generator: the swap model with `config.model.mask=True`; each decoder predicts
RGB and a one-channel mask, and the output is `mask * rgb + (1 - mask) * input`.
Discriminators: `deepjax.models.discriminator.PatchDiscriminator`, one for A and
one for B, each judging its identity's real (augmented, unwarped) faces against
the generator's reconstructions of the warped faces.

State: `params = {"gen": swap params, "disc": {"a": ..., "b": ...}}`, and
`opt_state` likewise `{"gen": ..., "disc": ...}` (two Adam optimisers).

One jitted `train_step` does, on one batch and one augmentation:
1. the generator's forward pass once, with `jax.vjp` kept for later;
2. the discriminator update (fakes with no gradient into the generator);
3. the generator update against the *updated* discriminators: the loss is a
   function of the generator's outputs, its gradient is pulled back through
   the saved vjp (so the generator runs forward and backward once per step).

Generator loss (weights in `config.gan`):
    reconstruction(output) + raw_weight * reconstruction(rgb)      (AETask's loss)
  + adv_weight * GAN loss (LSGAN or hinge, `config.gan.loss`)
  + mask_l1 * mean(mask) + mask_tv * total_variation(mask)
  + mask_hull * cross-entropy(mask, face hull of the landmarks)   (images with landmarks)
  + perceptual_weight * sum_l mean |VGG19_l(output) - VGG19_l(target)|   (only with a
        user-supplied weights file, `config.gan.vgg_weights`; off otherwise, and logged)
  + cycle_weight * L1(A -> B -> A, A) + identity_weight * L1(A -> A, A)   (both identities)
"""
import jax
from absl import logging
import jax.numpy as jnp
import numpy as np
import optax

from deepjax import losses
from deepjax.errors import UserError
from deepjax.models import discriminator
from deepjax.ops.face_hull import face_hull_mask
from deepjax.train.state import TrainState
from deepjax.train.tasks.ae import IDENTITIES, AETask, make_optimizer

GAN_LOSSES = {"lsgan": (losses.lsgan_d_loss, losses.lsgan_g_loss),
              "hinge": (losses.hinge_d_loss, losses.hinge_g_loss)}
OTHER = {"a": "b", "b": "a"}


def blend(rgb, mask, x):
  """mask * rgb + (1 - mask) * x; rgb, x (B,S,S,3), mask (B,S,S,1) in [0, 1]."""
  return mask * rgb + (1.0 - mask) * x


def mask_hull_loss(mask, hull, has):
  """Binary cross-entropy of a mask against the face hull, scalar float32.

  mask, hull: (B,S,S,1) in [0, 1]; has: (B,) 1 where the image's landmarks (so its hull) are
  known. The mean over the images that have one. Cross-entropy rather than L1: its gradient
  at the mask's logit is (mask - hull), which does not vanish when the sigmoid saturates, so
  a mask driven to 0 early in training (where copying the input reconstructs best) is pulled
  back to the face instead of staying there and leaving every swap equal to its input.
  """
  m = mask.astype(jnp.float32)
  tiny = jnp.finfo(jnp.float32).tiny  # keeps log finite where the sigmoid underflows
  bce = -(hull * jnp.log(m + tiny) + (1.0 - hull) * jnp.log1p(tiny - m))
  per_image = jnp.mean(bce, axis=(1, 2, 3))
  return jnp.sum(per_image * has) / jnp.maximum(jnp.sum(has), 1.0)


def with_mask_bias(gen, value: float):
  """Sets the mask channel's bias of each decoder's output convolution to `value`.

  The output convolution is the decoder's only one with 4 output channels
  (RGB + mask); a positive bias starts the mask near 1 (sigmoid(2) = 0.88), so
  early training does not settle on copying the input through a zero mask.
  """
  if not value:
    return gen
  def fix(tree):
    if isinstance(tree, dict):
      if "bias" in tree and tree["bias"].shape == (4,):
        return {**tree, "bias": tree["bias"].at[3].set(value)}
      return {k: fix(v) for k, v in tree.items()}
    return tree
  return {k: fix(v) if k.startswith("decoder_") else v for k, v in gen.items()}


def load_perceptual(gan_cfg):
  """VGG19 parameters for the perceptual term, or None (term off, with a warning)."""
  if not float(gan_cfg.get("perceptual_weight", 0.0)):
    return None
  from deepjax.models import vgg  # pylint: disable=import-outside-toplevel
  return vgg.load_for_loss(gan_cfg.get("vgg_weights", ""), "config.gan.vgg_weights",
                           "the gan task's perceptual loss is off")


def perceptual_distance(vgg_params, x, y, layers: int = 5):
  """sum over the first `layers` VGG19 feature maps of mean |f(x) - f(y)|, scalar float32."""
  from deepjax.models import vgg  # pylint: disable=import-outside-toplevel
  both = vgg.vgg19_features(vgg_params, jnp.concatenate([x, y], 0))
  b = x.shape[0]
  return sum(jnp.mean(jnp.abs(f[:b] - jax.lax.stop_gradient(f[b:]))) for f in both[:layers])


class GANTask(AETask):
  """Face-swap GAN on the shared training core (see the module docstring)."""

  def __init__(self, config):
    super().__init__(config)
    if not self.model.mask:
      raise UserError("the gan task needs config.model.mask=True")
    g = config.gan
    if g.loss not in GAN_LOSSES:
      raise UserError(f"config.gan.loss must be one of {sorted(GAN_LOSSES)}, not {g.loss!r}")
    self.d_loss_fn, self.g_loss_fn = GAN_LOSSES[g.loss]
    self.disc = discriminator.from_config(g.discriminator)
    self.disc_tx = make_optimizer(g.disc_optimizer, config.num_steps)
    vgg_params = load_perceptual(g)
    self.vgg = None if vgg_params is None else jax.tree.map(np.asarray, vgg_params)

  # --- state ----------------------------------------------------------------
  def init(self, rng, batch) -> TrainState:
    r_gen, r_disc, run_rng = jax.random.split(rng, 3)
    gen = with_mask_bias(self.init_params(r_gen, batch), self.config.gan.get("mask_init", 0.0))
    x = jnp.zeros(batch["a"].shape, jnp.float32)
    dkeys = jax.random.split(r_disc, len(IDENTITIES))
    disc = {i: self.disc.init(k, x)["params"] for i, k in zip(IDENTITIES, dkeys)}
    params = {"gen": gen, "disc": disc}
    opt_state = {"gen": self.tx.init(gen), "disc": self.disc_tx.init(disc)}
    return TrainState.create(params, opt_state, run_rng)

  def augmented_views(self, key, batch, ident):
    """(warped input, target, loss weight, (face hull of the target, has landmarks)).

    The hull (B,S,S,1) is augmented with the target (same affine and flip), as
    an extra channel of `AETask.augmented_pair`'s weight map.
    """
    size = batch[ident].shape[1]
    hull = face_hull_mask(batch[f"{ident}_landmarks"], size)
    has = batch[f"{ident}_has_landmarks"].astype(jnp.float32)
    x = batch[ident].astype(jnp.float32) / 255.0
    w = self.loss_weights(batch, ident)
    from deepjax.ops import augment  # pylint: disable=import-outside-toplevel
    inputs, targets = augment.augment_pair(key, jnp.concatenate([x, w, hull], -1),
                                        self.config.augment)
    return inputs[..., :3], targets[..., :3], targets[..., 3:4], (targets[..., 4:], has)

  # --- generator ------------------------------------------------------------
  def _decode(self, gen, x, ident):
    rgb, mask, _ = self.model.apply({"params": gen}, x, ident)
    return rgb, mask, blend(rgb, mask, x)

  def swap(self, params, images, to_identity: str):
    """float (B,S,S,3) -> (blended output, mask) decoded as `to_identity`.

    `params` is the full {"gen", "disc"} dict or the generator's alone.
    """
    gen = params["gen"] if "gen" in params else params
    _, mask, out = self._decode(gen, images, to_identity)
    return out, mask

  def generator_outputs(self, gen, inputs, clean):
    """Everything the generator loss needs, as a function of the generator's params.

    inputs/clean: {ident: (B,S,S,3)} warped inputs and unwarped targets.
    """
    g = self.config.gan
    outs = {}
    latents = self.encode_identities(gen, inputs)  # one encoder call for A and B
    for ident in IDENTITIES:
      rgb, mask = self.decode(gen, latents[ident][0], ident)
      outs[ident] = {"rgb": rgb, "mask": mask, "out": blend(rgb, mask, inputs[ident])}
      x = clean[ident]
      if g.get("cycle_weight", 0.0):
        swapped = self._decode(gen, x, OTHER[ident])[2]
        outs[ident]["cycle"] = self._decode(gen, swapped, ident)[2]
      if g.get("identity_weight", 0.0):
        outs[ident]["identity"] = self._decode(gen, x, ident)[2]
    return outs

  # --- losses ---------------------------------------------------------------
  def disc_loss(self, disc, outs, clean):
    total, metrics = 0.0, {}
    for ident in IDENTITIES:
      real = self.disc.apply({"params": disc[ident]}, clean[ident])
      fake = self.disc.apply({"params": disc[ident]}, jax.lax.stop_gradient(outs[ident]["out"]))
      total += self.d_loss_fn(real, fake)
      metrics[f"d_real_{ident}"] = jnp.mean(real)
      metrics[f"d_fake_{ident}"] = jnp.mean(fake)
    metrics["d_loss"] = total
    return total, metrics

  def gen_loss(self, outs, disc, clean, weights, hulls=None):
    g = self.config.gan
    total, metrics = 0.0, {}
    for ident in IDENTITIES:
      o, x, w = outs[ident], clean[ident], weights[ident]
      rec = self.reconstruction_loss(o["out"], x, w)
      if g.get("raw_weight", 0.0):
        rec += g.raw_weight * self.reconstruction_loss(o["rgb"], x, w)
      adv = self.g_loss_fn(self.disc.apply({"params": disc[ident]}, o["out"]))
      mask_reg = (g.get("mask_l1", 0.0) * jnp.mean(o["mask"]) +
                  g.get("mask_tv", 0.0) * losses.total_variation(o["mask"]))
      if g.get("mask_hull", 0.0):
        mask_reg += g.mask_hull * mask_hull_loss(o["mask"], *hulls[ident])
      loss = rec + g.adv_weight * adv + mask_reg
      if self.vgg is not None:
        perc = perceptual_distance(self.vgg, o["out"], x, int(g.get("perceptual_layers", 5)))
        metrics[f"perceptual_{ident}"] = perc
        loss += g.perceptual_weight * perc
      if "cycle" in o:
        metrics[f"cycle_{ident}"] = losses.l1(o["cycle"], x)
        loss += g.cycle_weight * metrics[f"cycle_{ident}"]
      if "identity" in o:
        metrics[f"identity_{ident}"] = losses.l1(o["identity"], x)
        loss += g.identity_weight * metrics[f"identity_{ident}"]
      metrics[f"loss_{ident}"] = rec
      metrics[f"g_adv_{ident}"] = adv
      metrics[f"mask_{ident}"] = jnp.mean(o["mask"])
      metrics[f"psnr_{ident}"] = jnp.mean(losses.psnr(o["out"], x))
      total += loss
    metrics["loss"] = total
    return total, metrics

  # --- step -----------------------------------------------------------------
  def train_step(self, state: TrainState, batch):
    """D update, then G update against the new D; returns (state, metrics)."""
    keys = jax.random.split(state.step_key(), len(IDENTITIES))
    inputs, clean, weights, hulls = {}, {}, {}, {}
    for k, ident in zip(keys, IDENTITIES):
      inputs[ident], clean[ident], weights[ident], hulls[ident] = self.augmented_views(
          k, batch, ident)
    gen, disc = state.params["gen"], state.params["disc"]

    outs, pull_back = jax.vjp(lambda p: self.generator_outputs(p, inputs, clean), gen)

    (_, d_metrics), d_grads = jax.value_and_grad(self.disc_loss, has_aux=True)(disc, outs, clean)
    d_updates, d_opt = self.disc_tx.update(d_grads, state.opt_state["disc"], disc)
    disc = optax.apply_updates(disc, d_updates)

    (_, g_metrics), d_outs = jax.value_and_grad(self.gen_loss, has_aux=True)(
        outs, disc, clean, weights, hulls)
    (g_grads,) = pull_back(d_outs)
    g_updates, g_opt = self.tx.update(g_grads, state.opt_state["gen"], gen)
    gen = optax.apply_updates(gen, g_updates)

    new = state.replace(step=state.step + 1, params={"gen": gen, "disc": disc},
                        opt_state={"gen": g_opt, "disc": d_opt})
    return new, {**g_metrics, **d_metrics}

  def preview(self, state: TrainState, batch, max_rows: int = 6):
    """uint8 grid; columns A, A->A, A->B, mask of A->B, B, B->B, B->A, mask of B->A."""
    a = batch["a"][:max_rows].astype(jnp.float32) / 255.0
    b = batch["b"][:max_rows].astype(jnp.float32) / 255.0
    cols = []
    for x, own, other in ((a, "a", "b"), (b, "b", "a")):
      sw, m = self.swap(state.params, x, other)
      cols += [x, self.swap(state.params, x, own)[0], sw, jnp.repeat(m, 3, axis=-1)]
    from deepjax.train.tasks.ae import image_grid  # pylint: disable=import-outside-toplevel
    return image_grid(cols)
