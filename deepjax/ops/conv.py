"""Stride-1 2-D convolutions (NHWC, HWIO, zero padding) in the formulation that XLA:CPU runs
fastest for the shape at hand; both are the same maths (tested against
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
`small_maps` pixels, `lax` otherwise. `small_map_conv` is the same rule as a drop-in for
`lax.conv_general_dilated` (`flax.linen.Conv(conv_general_dilated=small_map_conv)`).

Padding is (ph, pw) (the same on both sides) or ((top, bottom), (left, right)).
"""
from typing import Sequence, Tuple, Union

import jax
import jax.numpy as jnp

# Output maps with at most this many pixels use im2col (hourglass / swap-model bottoms).
IM2COL_MAX_PIXELS = 16

Padding = Union[Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]


def _pads(padding: Padding) -> Tuple[Tuple[int, int], Tuple[int, int]]:
  """(ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
  return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def _out_size(x_shape, kernel_shape, padding: Padding) -> Tuple[int, int]:
  (pt, pb), (pl, pr) = _pads(padding)
  return x_shape[1] + pt + pb - kernel_shape[0] + 1, x_shape[2] + pl + pr - kernel_shape[1] + 1


def conv_im2col(x_BxHxWxC, kernel_HWIO, padding: Padding, precision=None,
                preferred_element_type=None):
  """Stride-1 convolution as patches @ kernel. float (B,H,W,cin) -> (B,oh,ow,cout)."""
  kh, kw, cin, cout = kernel_HWIO.shape
  b = x_BxHxWxC.shape[0]
  oh, ow = _out_size(x_BxHxWxC.shape, kernel_HWIO.shape, padding)
  xp = jnp.pad(x_BxHxWxC, ((0, 0),) + _pads(padding) + ((0, 0),))
  cols = [xp[:, dy:dy + oh, dx:dx + ow, :] for dy in range(kh) for dx in range(kw)]
  patches = jnp.concatenate(cols, axis=-1).reshape(b * oh * ow, kh * kw * cin)
  y = jnp.dot(patches, kernel_HWIO.reshape(kh * kw * cin, cout), precision=precision,
              preferred_element_type=preferred_element_type)
  return y.reshape(b, oh, ow, cout)


def conv_lax(x_BxHxWxC, kernel_HWIO, padding: Padding):
  return jax.lax.conv_general_dilated(x_BxHxWxC, kernel_HWIO, (1, 1), _pads(padding),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def formulation(x_shape, kernel_shape, padding: Padding,
                small_maps: int = IM2COL_MAX_PIXELS) -> str:
  """"im2col" or "lax" for these shapes (the rules of the module docstring)."""
  oh, ow = _out_size(x_shape, kernel_shape, padding)
  return "im2col" if oh * ow <= small_maps else "lax"


def conv2d(x_BxHxWxC, kernel_HWIO, padding: Padding, small_maps: int = IM2COL_MAX_PIXELS):
  """Stride-1 convolution with zero padding `padding`: (B,oh,ow,cout)."""
  kind = formulation(x_BxHxWxC.shape, kernel_HWIO.shape, padding, small_maps)
  fn = {"im2col": conv_im2col, "lax": conv_lax}[kind]
  return fn(x_BxHxWxC, kernel_HWIO, _pads(padding))


def small_map_conv(lhs, rhs, window_strides: Sequence[int], padding, lhs_dilation=None,
                   rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                   batch_group_count=1, precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` that runs plain stride-1 NHWC convolutions with output maps of
  at most IM2COL_MAX_PIXELS pixels as `conv_im2col` (e.g. the first upscale of faceswap's
  "Original" model: 1024 -> 2048 channels on 4x4 maps) and calls XLA's convolution
  otherwise. Used as `nn.Conv(conv_general_dilated=small_map_conv)` (flax passes NHWC/HWIO).
  """
  undilated = all(d == 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ()))
  plain = (tuple(window_strides) == (1, 1) and not isinstance(padding, str) and undilated
           and feature_group_count == 1 and batch_group_count == 1)
  if plain and formulation(lhs.shape, rhs.shape, padding) == "im2col":
    return conv_im2col(lhs, rhs, padding, precision, preferred_element_type)
  return jax.lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
