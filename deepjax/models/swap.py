"""Face-swap models: one shared encoder, one decoder per identity.

Two architectures, chosen by `config.model.arch`:
- "seeds": the tiny Keras model of the seed article (64x64x3; encoder conv
  16/8/8 + 2x2 max-pool each, decoder conv 8/8/16 + nearest upsampling, sigmoid).
- "original": faceswap's "Original"-class model (5x5 stride-2 convs, a dense
  bottleneck, pixel-shuffle upscales, sigmoid RGB), widths from the config.

Options shared by both: `variational` (the encoder predicts a mean and a
log-variance; the latent is sampled by reparameterisation), and `mask` (each
decoder predicts a fourth, sigmoid channel: a blending mask).

Input (B, S, S, 3) float32 in [0, 1]; decoder output (B, S, S, 3) (+ mask
(B, S, S, 1)) in [0, 1].
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.models.blocks import ConvStack, DownBlock, UpscaleBlock, upsample_nearest


class Encoder(nn.Module):
  """(B,S,S,3) -> latent (B, h, w, c) (+ (mean, logvar) when variational)."""
  arch: str = "original"
  features: Sequence[int] = (128, 256, 512, 1024)
  latent_dim: int = 1024
  upscale_features: int = 512
  variational: bool = False
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x_BxSxSx3, rng=None):
    x = x_BxSxSx3.astype(self.dtype or x_BxSxSx3.dtype)
    if self.arch == "seeds":
      z = ConvStack(tuple(self.features), dtype=self.dtype)(x)
      if not self.variational:
        return z, None
      mean = nn.Conv(z.shape[-1], (1, 1), name="mean", dtype=self.dtype)(z)
      logvar = nn.Conv(z.shape[-1], (1, 1), name="logvar", dtype=self.dtype,
                       kernel_init=nn.initializers.zeros)(z)
      return self._sample(mean, logvar, rng), (mean, logvar)
    for f in self.features:
      x = DownBlock(f, dtype=self.dtype)(x)
    b = x.shape[0]
    flat = x.reshape(b, -1)
    stats = None
    if self.variational:
      mean = nn.Dense(self.latent_dim, name="mean", dtype=self.dtype)(flat)
      logvar = nn.Dense(self.latent_dim, name="logvar", dtype=self.dtype,
                        kernel_init=nn.initializers.zeros)(flat)
      h = self._sample(mean, logvar, rng)
      stats = (mean, logvar)
    else:
      h = nn.Dense(self.latent_dim, name="bottleneck", dtype=self.dtype)(flat)
    hh, ww = x.shape[1], x.shape[2]  # the last conv's map (4x4 at 64 px, as faceswap)
    h = nn.Dense(hh * ww * self.features[-1], name="expand", dtype=self.dtype)(h)
    h = h.reshape(b, hh, ww, self.features[-1])
    return UpscaleBlock(self.upscale_features, dtype=self.dtype)(h), stats

  def _sample(self, mean, logvar, rng):
    if rng is None:  # deterministic: the mean
      return mean
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar.astype(jnp.float32)).astype(mean.dtype) * eps


class Decoder(nn.Module):
  """latent -> (B,S,S,3) RGB in [0,1] (+ (B,S,S,1) mask when `mask`)."""
  arch: str = "original"
  features: Sequence[int] = (256, 128, 64)
  mask: bool = False
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, z):
    x = z
    if self.arch == "seeds":
      for f in self.features:
        x = nn.relu(nn.Conv(f, (3, 3), dtype=self.dtype)(x))
        x = upsample_nearest(x, 2)
      out = nn.Conv(3 + int(self.mask), (3, 3), dtype=self.dtype)(x)
    else:
      for f in self.features:
        x = UpscaleBlock(f, dtype=self.dtype)(x)
      out = nn.Conv(3 + int(self.mask), (5, 5), dtype=self.dtype)(x)
    out = nn.sigmoid(out.astype(jnp.float32))
    if self.mask:
      return out[..., :3], out[..., 3:]
    return out, None


class SwapModel(nn.Module):
  """Shared encoder and one decoder per identity ("a", "b").

  `__call__(x, identity, rng=None)` encodes x and decodes with the decoder of
  `identity`; returns (rgb (B,S,S,3), mask (B,S,S,1) or None,
  (mean, logvar) or None).
  """
  arch: str = "original"
  encoder_features: Sequence[int] = (128, 256, 512, 1024)
  latent_dim: int = 1024
  upscale_features: int = 512
  decoder_features: Sequence[int] = (256, 128, 64)
  variational: bool = False
  mask: bool = False
  identities: Sequence[str] = ("a", "b")
  dtype: jnp.dtype | None = None

  def setup(self):
    self.encoder = Encoder(self.arch, tuple(self.encoder_features), self.latent_dim,
                           self.upscale_features, self.variational,
                           dtype=self.dtype)
    self.decoders = {i: Decoder(self.arch, tuple(self.decoder_features), self.mask,
                                dtype=self.dtype, name=f"decoder_{i}")
                     for i in self.identities}

  def encode(self, x, rng=None):
    return self.encoder(x, rng)

  def decode(self, z, identity: str):
    return self.decoders[identity](z)

  def __call__(self, x, identity: str, rng=None):
    z, stats = self.encode(x, rng)
    rgb, mask = self.decode(z, identity)
    return rgb, mask, stats

  def init_all(self, x):
    """Initialises the encoder and every decoder (use as `method=` in init)."""
    z, _ = self.encode(x)
    return [self.decode(z, i) for i in self.identities]


def from_config(model_cfg) -> SwapModel:
  """Builds a `SwapModel` from `config.model` (an ml_collections ConfigDict)."""
  dtype = {"float32": None, "bfloat16": jnp.bfloat16}[model_cfg.get("dtype", "float32")]
  return SwapModel(
      arch=model_cfg.arch,
      encoder_features=tuple(model_cfg.encoder_features),
      latent_dim=model_cfg.get("latent_dim", 1024),
      upscale_features=model_cfg.get("upscale_features", 512),
      decoder_features=tuple(model_cfg.decoder_features),
      variational=model_cfg.get("variational", False),
      mask=model_cfg.get("mask", False),
      dtype=dtype,
  )
