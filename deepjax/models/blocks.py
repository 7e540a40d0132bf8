"""Building blocks of the face-swap models: convolutions, pixel shuffle, upscales.

All blocks are Flax linen modules over NHWC float arrays.

`StridedConv` is a strided convolution whose input gradient is computed
explicitly (`deepjax.ops.conv.conv_explicit_dx`: dilate the cotangent with interior
zeros, then a stride-1 convolution with the flipped, in/out-swapped kernel). XLA:CPU computes that gradient ~100x below its neighbours
for 5x5 stride-2 convolutions on small maps (docs/performance.md), the last
encoder layers of faceswap's "Original" model. The custom gradient is chosen
only for small maps (where it measured 24-47x faster); on large maps XLA's own
gradient is used. `tests/test_blocks.py` checks both against `jax.grad` of the
plain convolution.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepjax.ops import conv

_DN = ("NHWC", "HWIO", "NHWC")


def pixel_shuffle(x_BxHxWxC: jax.Array, r: int = 2) -> jax.Array:
  """Depth-to-space: (B, H, W, C*r*r) -> (B, H*r, W*r, C), PyTorch channel order."""
  b, h, w, c = x_BxHxWxC.shape
  co = c // (r * r)
  x = x_BxHxWxC.reshape(b, h, w, co, r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(b, h * r, w * r, co)


def _same_pads(size, k, s):
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return (total // 2, total - total // 2)


def strided_conv(x_BxHxWxC: jax.Array, w_KxKxCxF: jax.Array, stride: int,
                 explicit_dx: bool | None = None) -> jax.Array:
  """'SAME'-padded convolution; explicit input gradient on small maps (see module doc)."""
  kh, kw = w_KxKxCxF.shape[:2]
  padding = (_same_pads(x_BxHxWxC.shape[1], kh, stride), _same_pads(x_BxHxWxC.shape[2], kw, stride))
  if explicit_dx is None:
    explicit_dx = stride > 1 and max(x_BxHxWxC.shape[1:3]) <= conv.EXPLICIT_DX_MAX_SIZE
  if explicit_dx:
    return conv.conv_explicit_dx(x_BxHxWxC, w_KxKxCxF, stride, padding)
  return jax.lax.conv_general_dilated(x_BxHxWxC, w_KxKxCxF, (stride, stride), padding,
                                      dimension_numbers=_DN)


class StridedConv(nn.Module):
  """Conv (k x k, stride s, SAME) + bias, with the small-map input-gradient fix."""
  features: int
  kernel_size: int = 5
  stride: int = 2
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x_BxHxWxC):
    c = x_BxHxWxC.shape[-1]
    w = self.param("kernel", nn.initializers.lecun_normal(),
                   (self.kernel_size, self.kernel_size, c, self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    dtype = self.dtype or x_BxHxWxC.dtype
    y = strided_conv(x_BxHxWxC.astype(dtype), w.astype(dtype), self.stride)
    return y + b.astype(dtype).reshape(1, 1, 1, -1)


def leaky(x, slope: float = 0.1):
  return nn.leaky_relu(x, slope)


class DownBlock(nn.Module):
  """faceswap 'conv' block: 5x5 stride-2 conv + LeakyReLU(0.1). (B,H,W,C) -> (B,H/2,W/2,F)."""
  features: int
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):
    return leaky(StridedConv(self.features, 5, 2, dtype=self.dtype)(x))


class UpscaleBlock(nn.Module):
  """faceswap 'upscale' block: 3x3 conv to 4F + LeakyReLU(0.1) + pixel shuffle.

  (B,H,W,C) -> (B,2H,2W,F).
  """
  features: int
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(4 * self.features, (3, 3), dtype=self.dtype,
                conv_general_dilated=conv.small_map_conv)(x)
    return pixel_shuffle(leaky(x), 2)


class ConvStack(nn.Module):
  """Seeds' Keras encoder: [3x3 conv + ReLU, 2x2 max-pool] per feature size."""
  features: Sequence[int]
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):
    for f in self.features:
      x = nn.relu(nn.Conv(f, (3, 3), dtype=self.dtype)(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
    return x


def upsample_nearest(x_BxHxWxC, factor: int = 2):
  """Keras UpSampling2D: nearest-neighbour x factor."""
  return jnp.repeat(jnp.repeat(x_BxHxWxC, factor, axis=1), factor, axis=2)
