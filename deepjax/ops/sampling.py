"""Bilinear sampling and resizing that match PyTorch's conventions exactly (NHWC).

`grid_sample` equals `torch.nn.functional.grid_sample(input_NCHW, grid, mode="bilinear",
padding_mode="zeros", align_corners=...)` after the layout transposes, for both
`align_corners` conventions. A grid point (x, y) in [-1, 1] maps to the pixel index

  align_corners=False:  ix = ((x + 1) * W - 1) / 2   (-1 / +1 are the outer *edges* of the
                        border pixels; this is deepjax's convention, docs/CONTRACTS.md)
  align_corners=True:   ix = (x + 1) / 2 * (W - 1)   (-1 / +1 are the *centres* of the border
                        pixels; the convention of first-order-model's `make_coordinate_grid`)

and likewise for y with H. With padding_mode="zeros" corners outside the image contribute
zero; "border" clamps the coordinate into the image; "reflection" reflects it about the
image borders (the border pixel centres when align_corners=True, the image edges when
False) and then clamps, exactly as torch.

`interpolate_bilinear` equals `torch.nn.functional.interpolate(x, size, mode="bilinear",
align_corners=...)` (no anti-aliasing, source index clamped at the borders), which
`jax.image.resize` does not reproduce when downsampling (it anti-aliases).
"""
from typing import Tuple

import jax.numpy as jnp
import numpy as np


def _unnormalize(coord, size: int, align_corners: bool):
  """Grid coordinate in [-1, 1] -> continuous pixel index (float)."""
  if align_corners:
    return (coord + 1.0) * (0.5 * (size - 1))
  return ((coord + 1.0) * size - 1.0) * 0.5


def _reflect(coord, twice_low: int, twice_high: int):
  """torch's reflect_coordinates: reflects about [twice_low / 2, twice_high / 2]."""
  if twice_low == twice_high:
    return jnp.zeros_like(coord)
  low = twice_low / 2.0
  span = (twice_high - twice_low) / 2.0
  coord = jnp.abs(coord - low)
  extra = jnp.fmod(coord, span)
  flips = jnp.floor(coord / span).astype(jnp.int32)
  return jnp.where(flips % 2 == 0, extra + low, span - extra + low)


def _pad_coordinate(coord, size: int, align_corners: bool, padding_mode: str):
  if padding_mode == "zeros":
    return coord
  if padding_mode == "reflection":
    if align_corners:
      coord = _reflect(coord, 0, 2 * (size - 1))
    else:
      coord = _reflect(coord, -1, 2 * size - 1)
  elif padding_mode != "border":
    raise ValueError(f"unknown padding_mode {padding_mode!r}")
  return jnp.clip(coord, 0.0, size - 1.0)


def grid_sample(image_BxHxWxC, grid_BxhxWx2, align_corners: bool = False,
                padding_mode: str = "zeros"):
  """Bilinear sampling of `image` at `grid` points.

  Args:
    image_BxHxWxC: float array (B, H, W, C).
    grid_BxhxWx2: float array (B, h, w, 2); last axis is (x, y) in [-1, 1]
      (x indexes width, y indexes height), as torch's grid_sample.
    align_corners: the torch convention (see the module docstring).
    padding_mode: "zeros" (default), "border" or "reflection", as torch.

  Returns:
    float array (B, h, w, C), dtype of `image`. Differentiable in both the image and
    the grid (the gradient of the grid flows through the bilinear weights, as torch).
  """
  b, in_h, in_w, c = image_BxHxWxC.shape
  gb, out_h, out_w, two = grid_BxhxWx2.shape
  if gb != b or two != 2:
    raise ValueError(f"grid {grid_BxhxWx2.shape} does not match image {image_BxHxWxC.shape}")
  dtype = image_BxHxWxC.dtype
  grid = grid_BxhxWx2.astype(jnp.float32)
  ix = _unnormalize(grid[..., 0], in_w, align_corners).reshape(b, out_h * out_w)
  iy = _unnormalize(grid[..., 1], in_h, align_corners).reshape(b, out_h * out_w)
  ix = _pad_coordinate(ix, in_w, align_corners, padding_mode)
  iy = _pad_coordinate(iy, in_h, align_corners, padding_mode)

  x0 = jnp.floor(ix)
  y0 = jnp.floor(iy)
  wx1 = ix - x0
  wx0 = 1.0 - wx1
  wy1 = iy - y0
  wy0 = 1.0 - wy1
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  x1 = x0 + 1
  y1 = y0 + 1

  flat_BxNxC = image_BxHxWxC.reshape(b, in_h * in_w, c)

  def corner(xi, yi, weight):
    valid = (xi >= 0) & (xi < in_w) & (yi >= 0) & (yi < in_h)
    index = jnp.clip(yi, 0, in_h - 1) * in_w + jnp.clip(xi, 0, in_w - 1)
    values_BxMxC = jnp.take_along_axis(flat_BxNxC, index[..., None], axis=1)
    w = jnp.where(valid, weight, 0.0).astype(dtype)
    return values_BxMxC * w[..., None]

  out = (corner(x0, y0, wx0 * wy0) + corner(x1, y0, wx1 * wy0) +
         corner(x0, y1, wx0 * wy1) + corner(x1, y1, wx1 * wy1))
  return out.reshape(b, out_h, out_w, c).astype(dtype)


def _interp_matrix(out_size: int, in_size: int, align_corners: bool) -> np.ndarray:
  """(out_size, in_size) matrix of torch's 1-D linear interpolation weights."""
  m = np.zeros((out_size, in_size), np.float64)
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = dst * scale
  else:
    src = (dst + 0.5) * (in_size / out_size) - 0.5
    src = np.maximum(src, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  w1 = src - i0
  w0 = 1.0 - w1
  rows = np.arange(out_size)
  np.add.at(m, (rows, i0), w0)
  np.add.at(m, (rows, i1), w1)
  return m.astype(np.float32)


def interpolate_bilinear(x_BxHxWxC, size: Tuple[int, int], align_corners: bool = False):
  """Resizes to `size` = (h, w) like `torch.nn.functional.interpolate(mode="bilinear")`.

  Args:
    x_BxHxWxC: float array (B, H, W, C).
    size: output (h, w).
    align_corners: torch's flag (the reference calls interpolate with the default, False).

  Returns:
    float array (B, h, w, C). Implemented as two small interpolation matrices (exact,
    separable, differentiable).
  """
  _, in_h, in_w, _ = x_BxHxWxC.shape
  out_h, out_w = size
  if (out_h, out_w) == (in_h, in_w):
    return x_BxHxWxC
  mh = jnp.asarray(_interp_matrix(out_h, in_h, align_corners), x_BxHxWxC.dtype)
  mw = jnp.asarray(_interp_matrix(out_w, in_w, align_corners), x_BxHxWxC.dtype)
  y = jnp.einsum("ih,bhwc->biwc", mh, x_BxHxWxC)
  return jnp.einsum("jw,biwc->bijc", mw, y)
