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
import functools
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


_DN = ("NHWC", "HWIO", "NHWC")
# Strided convolutions with input maps of at most this many pixels a side take the explicit
# input gradient (`conv_explicit_dx`).
EXPLICIT_DX_MAX_SIZE = 16


def _conv_strided(x, w, stride, padding):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DN)


def _conv_explicit_dx_fwd(x, w, stride, padding):
  return _conv_strided(x, w, stride, padding), (x, w)


def _conv_explicit_dx_bwd(stride, padding, res, g):
  x, w = res
  kh, kw = w.shape[0], w.shape[1]
  (pt, pb), (pl, pr) = padding
  # dX: dilate the cotangent by the stride, pad to a full correlation, convolve
  # with the spatially flipped kernel with in/out channels swapped.
  g_dil = jax.lax.pad(g, jnp.zeros((), g.dtype),
                      ((0, 0, 0), (0, 0, stride - 1), (0, 0, stride - 1), (0, 0, 0)))
  h_in, w_in = x.shape[1], x.shape[2]
  # Rows of the padded input covered by the forward pass.
  cov_h = (g.shape[1] - 1) * stride + kh
  cov_w = (g.shape[2] - 1) * stride + kw
  extra_h = h_in + pt + pb - cov_h
  extra_w = w_in + pl + pr - cov_w
  w_t = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  pad_dx = ((kh - 1 - pt, kh - 1 - pb + extra_h), (kw - 1 - pl, kw - 1 - pr + extra_w))
  dx = jax.lax.conv_general_dilated(g_dil, w_t, (1, 1), pad_dx, dimension_numbers=_DN)
  # dW: XLA's own weight gradient is fine on these shapes.
  _, vjp_w = jax.vjp(lambda w_: _conv_strided(x, w_, stride, padding), w)
  (dw,) = vjp_w(g)
  return dx, dw


conv_explicit_dx = jax.custom_vjp(_conv_strided, nondiff_argnums=(2, 3))
conv_explicit_dx.__doc__ = """(x (B,H,W,C), kernel (k,k,C,F), stride, padding ((t,b),(l,r)))
-> the strided convolution, whose input gradient is computed explicitly (the cotangent
dilated by the stride, then a stride-1 convolution with the flipped, in/out-swapped
kernel). XLA:CPU computes that gradient 5-100x below its neighbours for strided
convolutions on small maps (faceswap's 5x5 encoder convolutions, ResNet-18's strided
convolutions at 64 px: docs/performance.md)."""
conv_explicit_dx.defvjp(_conv_explicit_dx_fwd, _conv_explicit_dx_bwd)


def _is_nhwc(dimension_numbers, lhs_shape, rhs_shape) -> bool:
  """Whether `dimension_numbers` (None, strings or lax's named tuple) mean NHWC/HWIO/NHWC."""
  if dimension_numbers is None:
    return False
  nhwc = jax.lax.conv_dimension_numbers(lhs_shape, rhs_shape, _DN)
  return jax.lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers) == nhwc


def small_map_conv(lhs, rhs, window_strides: Sequence[int], padding, lhs_dilation=None,
                   rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                   batch_group_count=1, precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` that runs plain stride-1 NHWC convolutions with output maps of
  at most IM2COL_MAX_PIXELS pixels as `conv_im2col` (e.g. the first upscale of faceswap's
  "Original" model: 1024 -> 2048 channels on 4x4 maps), plain strided ones on inputs of at
  most EXPLICIT_DX_MAX_SIZE pixels a side as `conv_explicit_dx`, and calls XLA's
  convolution otherwise. Used as `nn.Conv(conv_general_dilated=small_map_conv)` (flax
  passes NHWC/HWIO and explicit padding).
  """
  undilated = all(d == 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ()))
  strides = tuple(window_strides)
  plain = (not isinstance(padding, str) and undilated and feature_group_count == 1
           and batch_group_count == 1)
  if plain and strides == (1, 1) and formulation(lhs.shape, rhs.shape, padding) == "im2col":
    return conv_im2col(lhs, rhs, padding, precision, preferred_element_type)
  # conv_explicit_dx takes no precision or output type: only the default ones go there.
  if (plain and strides[0] == strides[1] > 1 and max(lhs.shape[1:3]) <= EXPLICIT_DX_MAX_SIZE
      and precision is None and preferred_element_type is None
      and _is_nhwc(dimension_numbers, lhs.shape, rhs.shape)):
    return conv_explicit_dx(lhs, rhs, strides[0], tuple(tuple(p) for p in padding))
  return jax.lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int, int]:
  """(output size, low pad, high pad) of TF/flax "SAME" padding along one axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return out, total // 2, total - total // 2


def _shifted_sum(xp_BxHxWxC, kernel_KxKxC, oh: int, ow: int, stride: int):
  """sum over taps (dy, dx) of xp[:, dy::stride, dx::stride] (oh x ow) * kernel[dy, dx]."""
  k = kernel_KxKxC.shape[0]
  out = None
  for dy in range(k):
    for dx in range(k):
      tap = xp_BxHxWxC[:, dy:dy + (oh - 1) * stride + 1:stride,
                       dx:dx + (ow - 1) * stride + 1:stride]
      term = tap * kernel_KxKxC[dy, dx].reshape(1, 1, 1, -1)
      out = term if out is None else out + term
  return out


def _depthwise_padded(x_BxHxWxC, k: int, stride: int):
  _, h, w, _ = x_BxHxWxC.shape
  oh, top, bottom = _same_pads(h, k, stride)
  ow, left, right = _same_pads(w, k, stride)
  xp = jnp.pad(x_BxHxWxC, ((0, 0), (top, bottom), (left, right), (0, 0)))
  return xp, oh, ow, top, left


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv(x_BxHxWxC, kernel_KxKxC, stride: int = 1):
  """Depthwise convolution with TF/flax "SAME" zero padding, as a sum of k*k shifted
  products: (B,H,W,C), (k,k,C) -> (B,ceil(H/s),ceil(W/s),C).

  The same maths as `lax.conv_general_dilated(..., feature_group_count=C)` (tested,
  values and gradients), in the form XLA:CPU fuses into elementwise loops; its grouped
  convolution is several times slower for the depthwise kernels of MBConv blocks. The
  input gradient is the same kind of shifted sum over the stride-dilated output
  gradient (a custom VJP: automatic differentiation of the strided taps compiles
  slowly and runs slower).
  """
  xp, oh, ow, _, _ = _depthwise_padded(x_BxHxWxC, kernel_KxKxC.shape[0], stride)
  return _shifted_sum(xp, kernel_KxKxC, oh, ow, stride)


def _depthwise_fwd(x_BxHxWxC, kernel_KxKxC, stride):
  return depthwise_conv(x_BxHxWxC, kernel_KxKxC, stride), (x_BxHxWxC, kernel_KxKxC)


def _depthwise_bwd(stride, res, g_BxOHxOWxC):
  x, kernel = res
  k = kernel.shape[0]
  _, h, w, _ = x.shape
  xp, oh, ow, top, left = _depthwise_padded(x, k, stride)
  # d xp[i] = sum_t g_dilated[i - t] kernel[t]: a stride-1 correlation of the dilated,
  # (k-1)-padded gradient with the flipped kernel.
  span_h, span_w = (oh - 1) * stride + 1, (ow - 1) * stride + 1
  gp = jax.lax.pad(g_BxOHxOWxC, jnp.zeros((), g_BxOHxOWxC.dtype),
                   ((0, 0, 0), (k - 1, xp.shape[1] - span_h, stride - 1),
                    (k - 1, xp.shape[2] - span_w, stride - 1), (0, 0, 0)))
  dxp = _shifted_sum(gp, kernel[::-1, ::-1], xp.shape[1], xp.shape[2], 1)
  dx = dxp[:, top:top + h, left:left + w]
  dk = jnp.stack([jnp.stack([
      jnp.sum(xp[:, dy:dy + span_h:stride, dx_:dx_ + span_w:stride] * g_BxOHxOWxC,
              axis=(0, 1, 2)) for dx_ in range(k)]) for dy in range(k)])
  return dx, dk.astype(kernel.dtype)


depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)
