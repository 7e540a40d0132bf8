"""The variational face-swap autoencoder task (an `AETask` with a KL term).

The encoder predicts a mean and a log-variance (`config.model.variational`);
training samples the latent by reparameterisation and adds a KL term to the
reconstruction loss of the plain autoencoder:

    loss = sum over identities of reconstruction(decoded, target)
           + beta(step) * mean_batch(KL(N(mean, exp(logvar)) || N(0, I))) / (S * S * 3)

The KL is divided by the number of pixel values S*S*3 so that it sits on the
same per-pixel scale as the (mean) reconstruction loss; `beta(step)` rises
linearly from 0 to `config.vae.beta` over `config.vae.warmup_steps` steps
(KL warm-up, Bowman et al. 2016). Swapping and previews use the mean (no
sampling). `decode_latent` maps a latent *vector* (the encoder's bottleneck)
to faces, for random samples and interpolations (`deepjax sample`).
"""
import jax
import jax.numpy as jnp

from deepjax import losses
from deepjax.errors import UserError
from deepjax.models.blocks import UpscaleBlock
from deepjax.train.tasks.ae import IDENTITIES, AETask


def kl_weight(vae_cfg, step):
  """beta(step): linear warm-up from 0 to vae_cfg.beta over vae_cfg.warmup_steps (float32)."""
  beta = float(vae_cfg.get("beta", 1.0))
  warm = int(vae_cfg.get("warmup_steps", 0))
  if warm <= 0:
    return jnp.asarray(beta, jnp.float32)
  frac = jnp.minimum(jnp.asarray(step, jnp.float32) / warm, 1.0)
  return beta * frac


class VAETask(AETask):
  """Face-swap VAE: `AETask` + reparameterised latent + warmed-up KL term."""

  def __init__(self, config):
    super().__init__(config)
    if not self.model.variational:
      raise UserError("the vae task needs config.model.variational=True")

  def loss_fn(self, params, batch, key, step=0):
    """Returns (loss, metrics); `key` drives augmentation and latent sampling."""
    total, metrics = 0.0, {}
    beta = kl_weight(self.config.vae, step)
    keys = jax.random.split(key, len(IDENTITIES) + 1)
    kl_total = 0.0
    pairs = {ident: self.augmented_pair(k, batch, ident) for k, ident in zip(keys, IDENTITIES)}
    latents = self.encode_identities(params, {i: pairs[i][0] for i in IDENTITIES}, keys[-1])
    for ident in IDENTITIES:
      inp, tgt, w = pairs[ident]
      z, (mean, logvar) = latents[ident]
      pred, _ = self.decode(params, z, ident)
      rec = self.reconstruction_loss(pred, tgt, w)
      kl = jnp.mean(losses.kl_divergence(mean, logvar)) / float(inp[0].size)
      metrics[f"loss_{ident}"] = rec
      metrics[f"kl_{ident}"] = kl
      metrics[f"psnr_{ident}"] = jnp.mean(losses.psnr(pred, tgt))
      total += rec + beta * kl
      kl_total += kl
    metrics["kl"] = kl_total
    metrics["beta"] = beta
    metrics["loss"] = total
    return total, metrics

  # --- latent space ---------------------------------------------------------
  def latent_shape(self, size: int) -> tuple:
    """Shape of one latent (no batch axis) for faces of `size` pixels."""
    m = self.model
    if m.arch == "seeds":
      s = size // 2 ** len(m.encoder_features)
      return (s, s, m.encoder_features[-1])
    return (m.latent_dim,)

  def encode_mean(self, params, images):
    """float (B,S,S,3) -> latent means (B, *latent_shape)."""
    _, (mean, _) = self.model.apply({"params": params}, images, method=self.model.encode)
    return mean

  def decode_latent(self, params, z, identity: str):
    """Latents (B, *latent_shape) -> decoded faces float (B,S,S,3) of `identity`.

    For the "original" architecture the encoder's tail (dense `expand` and the
    first upscale) runs after sampling, so it is applied here from the
    encoder's parameters before the identity's decoder.
    """
    m = self.model
    h = z
    if m.arch != "seeds":
      enc = params["encoder"]
      ex = enc["expand"]
      h = h @ ex["kernel"] + ex["bias"].reshape(1, -1)
      c = m.encoder_features[-1]
      side = int(round((ex["kernel"].shape[-1] // c) ** 0.5))
      h = h.reshape(h.shape[0], side, side, c)
      h = UpscaleBlock(m.upscale_features, dtype=m.dtype).apply(
          {"params": enc["UpscaleBlock_0"]}, h)
    rgb, _ = self.model.apply({"params": params}, h, identity, method=self.model.decode)
    return rgb

  def sample(self, params, key, n: int, size: int):
    """n random faces decoded as each identity: {"a": (n,S,S,3), "b": ...} float32."""
    z = jax.random.normal(key, (n,) + self.latent_shape(size), jnp.float32)
    return {ident: self.decode_latent(params, z, ident) for ident in IDENTITIES}

  def interpolate(self, params, face0, face1, steps: int):
    """Faces (S,S,3) -> {"a": (steps,S,S,3), "b": ...}: decoded mean latents on the line."""
    means = self.encode_mean(params, jnp.stack([face0, face1]))
    t = jnp.linspace(0.0, 1.0, steps, dtype=jnp.float32).reshape((steps,) + (1,) * (means.ndim - 1))
    z = (1.0 - t) * means[:1] + t * means[1:]
    return {ident: self.decode_latent(params, z, ident) for ident in IDENTITIES}
