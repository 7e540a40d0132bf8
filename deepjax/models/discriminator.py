"""PatchGAN-style discriminator for the face-swap GAN (one per identity).

Isola et al. (pix2pix): a stack of 4x4 stride-2 convolutions with LeakyReLU(0.2),
then a 4x4 stride-1 convolution to one logit per patch. Each logit sees a
receptive field of a few dozen pixels, so the discriminator judges local
texture (sharpness), which is what the face-swap reconstructions lack.
No normalisation layers: the GAN task keeps no running statistics.

Input (B, S, S, 3) float32 in [0, 1] (mapped to [-1, 1] inside); output
(B, S / 2**len(features), S / 2**len(features), 1) float32 logits.
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class PatchDiscriminator(nn.Module):
  """Patch discriminator: (B,S,S,C) images -> (B,s,s,1) logits, s = S / 2**len(features)."""
  features: Sequence[int] = (64, 128, 256)
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x_BxSxSxC):
    x = (x_BxSxSxC.astype(jnp.float32) * 2.0 - 1.0).astype(self.dtype or jnp.float32)
    for i, f in enumerate(self.features):
      x = nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype,
                  name=f"down_{i}")(x)
      x = nn.leaky_relu(x, 0.2)
    logits = nn.Conv(1, (4, 4), strides=(1, 1), padding="SAME", dtype=self.dtype,
                     name="logits")(x)
    return logits.astype(jnp.float32)


def from_config(disc_cfg) -> PatchDiscriminator:
  """`config.gan.discriminator` -> PatchDiscriminator."""
  dtype = {"float32": None, "bfloat16": jnp.bfloat16}[disc_cfg.get("dtype", "float32")]
  return PatchDiscriminator(features=tuple(disc_cfg.features), dtype=dtype)
