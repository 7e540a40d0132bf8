"""Colour augmentation of the encoder's input (jit-able, per image).

The shared encoder of a face-swap model should encode pose and expression, not
who the person is. Jittering hue, saturation, brightness and contrast (and
sometimes dropping colour) of the *input* only — the target keeps its colours —
takes colour away as an identity cue, so each decoder learns to restore its own
identity's colours from geometry. On the synthetic identities this is what
makes A->B swaps generalise within a CPU-sized run (see README, demo).

Images are float32 (B,H,W,3) in [0,1]; colour maths in YIQ (luma + 2 chroma).
"""
from typing import Mapping

import jax
import jax.numpy as jnp

_RGB2YIQ = jnp.array([[0.299, 0.587, 0.114],
                      [0.595716, -0.274453, -0.321263],
                      [0.211456, -0.522591, 0.311135]], jnp.float32)
_YIQ2RGB = jnp.linalg.inv(_RGB2YIQ)

COLOR_DEFAULTS = dict(hue=0.0, saturation=0.0, brightness=0.0, contrast=0.0, grayscale_prob=0.0)


def color_jitter(key, images_BxHxWx3, hue: float = 0.0, saturation: float = 0.0,
                 brightness: float = 0.0, contrast: float = 0.0, grayscale_prob: float = 0.0):
  """Random per-image colour jitter.

  hue: max rotation of the chroma plane as a fraction of a half turn (1.0 = +-180 deg);
  saturation: chroma scale in [1-s, 1+s]; brightness: luma offset in [-b, b];
  contrast: luma scale about the image mean in [1-c, 1+c]; grayscale_prob:
  probability of dropping the chroma. All zero -> the input unchanged.
  """
  b = images_BxHxWx3.shape[0]
  kh, ks, kb, kc, kg = jax.random.split(key, 5)
  theta = jax.random.uniform(kh, (b,), minval=-1.0, maxval=1.0) * hue * jnp.pi
  sat = 1.0 + jax.random.uniform(ks, (b,), minval=-1.0, maxval=1.0) * saturation
  sat = jnp.where(jax.random.uniform(kg, (b,)) < grayscale_prob, 0.0, sat)
  bright = jax.random.uniform(kb, (b,), minval=-1.0, maxval=1.0) * brightness
  cont = 1.0 + jax.random.uniform(kc, (b,), minval=-1.0, maxval=1.0) * contrast
  yiq = jnp.einsum("bhwc,dc->bhwd", images_BxHxWx3, _RGB2YIQ)
  y, iq = yiq[..., :1], yiq[..., 1:]
  mean_y = jnp.mean(y, axis=(1, 2, 3), keepdims=True)
  y = (y - mean_y) * cont.reshape(b, 1, 1, 1) + mean_y + bright.reshape(b, 1, 1, 1)
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  rot = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)  # b,2,2
  rot = rot * sat.reshape(b, 1, 1)
  iq = jnp.einsum("bhwc,bdc->bhwd", iq, rot)
  rgb = jnp.einsum("bhwc,dc->bhwd", jnp.concatenate([y, iq], -1), _YIQ2RGB)
  return jnp.clip(rgb, 0.0, 1.0)


def color_augment(key, images_BxHxWx3, cfg: Mapping | None):
  """`color_jitter` with fields from a config dict (missing fields = 0 = off)."""
  if not cfg:
    return images_BxHxWx3
  kw = {k: float(cfg.get(k, v)) for k, v in COLOR_DEFAULTS.items()}
  unknown = set(cfg.keys()) - set(COLOR_DEFAULTS)
  if unknown:
    from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
    raise UserError(f"unknown colour augmentation fields: {', '.join(sorted(unknown))}")
  if not any(kw.values()):
    return images_BxHxWx3
  return color_jitter(key, images_BxHxWx3, **kw)
