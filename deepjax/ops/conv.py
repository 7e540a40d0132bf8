"""Stride-1 2-D convolutions (NHWC, HWIO, symmetric zero padding) in the formulation that
XLA:CPU runs fastest for the shape at hand; both are the same maths (tested against
`lax.conv_general_dilated`, values and gradients).

- `conv_im2col`: patches (B*oh*ow, kh*kw*cin) @ kernel (kh*kw*cin, cout). XLA:CPU's
  convolution runs many channels on tiny maps (hourglass bottoms: 512-2048 channels on
  1-4 px) 20-60x below its usual speed; one matmul does not. The patches hold kh*kw
  copies of the input, so it is for small maps only.
- `conv_lax` (`lax.conv_general_dilated`) otherwise: on FOMM's larger maps it beats im2col
  (`deepjax bench --rows=conv`: 3x3 convs at 16-64 px run fwd+bwd at 110-190
  GFLOP/s, im2col at 85-160); for few output channels (the 7x7 heads with 1-11 maps) it is
  slow per FLOP but those convolutions are cheap (12-60 ms of a FOMM step).

`conv2d(x, kernel, padding, small_maps)` takes im2col for output maps of at most
`small_maps` pixels, `lax` otherwise.
"""
from typing import Tuple

import jax
import jax.numpy as jnp

# Output maps with at most this many pixels use im2col (hourglass / swap-model bottoms).
IM2COL_MAX_PIXELS = 16


def conv_im2col(x_BxHxWxC, kernel_HWIO, padding: Tuple[int, int]):
  """Stride-1 convolution as patches @ kernel. float (B,H,W,cin) -> (B,oh,ow,cout)."""
  kh, kw, cin, cout = kernel_HWIO.shape
  b, h, w, _ = x_BxHxWxC.shape
  ph, pw = padding
  xp = jnp.pad(x_BxHxWxC, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
  cols = [xp[:, dy:dy + oh, dx:dx + ow, :] for dy in range(kh) for dx in range(kw)]
  patches = jnp.concatenate(cols, axis=-1).reshape(b * oh * ow, kh * kw * cin)
  return (patches @ kernel_HWIO.reshape(kh * kw * cin, cout)).reshape(b, oh, ow, cout)


def conv_lax(x_BxHxWxC, kernel_HWIO, padding: Tuple[int, int]):
  ph, pw = padding
  return jax.lax.conv_general_dilated(x_BxHxWxC, kernel_HWIO, (1, 1), ((ph, ph), (pw, pw)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def formulation(x_shape, kernel_shape, padding, small_maps: int = IM2COL_MAX_PIXELS) -> str:
  """"im2col" or "lax" for these shapes (the rules of the module docstring)."""
  kh, kw = kernel_shape[:2]
  oh = x_shape[1] + 2 * padding[0] - kh + 1
  ow = x_shape[2] + 2 * padding[1] - kw + 1
  return "im2col" if oh * ow <= small_maps else "lax"


def conv2d(x_BxHxWxC, kernel_HWIO, padding: Tuple[int, int],
           small_maps: int = IM2COL_MAX_PIXELS):
  """Stride-1 convolution, zero padding `padding` (ph, pw) on both sides: (B,oh,ow,cout)."""
  kind = formulation(x_BxHxWxC.shape, kernel_HWIO.shape, padding, small_maps)
  fn = {"im2col": conv_im2col, "lax": conv_lax}[kind]
  return fn(x_BxHxWxC, kernel_HWIO, tuple(padding))
