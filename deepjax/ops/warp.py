"""Geometric augmentation for face-swap training: random warp, random affine, flip.

All functions are pure and jit-able, take explicit RNG keys and work on NHWC
float32 images in [0, 1]. Every resampling goes through `remap` (bilinear, with
a chosen border mode), so an affine transform and a random warp compose into a
single resampling (less blur than resampling twice).

Conventions:
- Pixel coordinates are (x, y) index coordinates: pixel (i, j) (row i, column j)
  has its centre at x = j, y = i.
- An affine "matrix" here is a (3, 3) homogeneous matrix that maps an *output*
  pixel (x, y, 1) to the *source* pixel it is read from (the inverse map, as
  `scipy.ndimage.affine_transform` uses).
- Landmarks are (x, y) in [-1, 1] (docs/CONTRACTS.md): px = (u + 1) / 2 * W - 0.5.

The random warp follows the idea of faceswap's "Original" trainer: a 5x5 grid
of control points covering the image, each moved by Gaussian noise with a
standard deviation of about 5/256 of the image size, interpolated to a smooth
dense displacement field, and the image remapped along it. Face-swap training
feeds the decoder warped inputs and asks for unwarped targets; `augment_pair`
(deepjax.ops.augment) produces exactly that pair (same affine/flip for both, warp on
inputs only).

The config-driven training augmentation (`augment`, `augment_pair`) built on
these functions is in `deepjax.ops.augment`.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.errors import UserError

# faceswap's "Original" warp: Gaussian control-point noise of 5/256 of the size.
DEFAULT_WARP_JITTER = 5.0 / 256.0

BORDER_MODES = ("edge", "reflect", "zeros")


# ----------------------------------------------------------------------------
# Resampling
# ----------------------------------------------------------------------------
def _fold_index(idx, n, mode):
  """Maps integer indices (any int array) into [0, n) for `mode`; also a validity mask."""
  if mode == "edge":
    return jnp.clip(idx, 0, n - 1), None
  if mode == "reflect":  # half-sample symmetric: ... b a | a b c ... c | c b ...
    period = 2 * n
    m = jnp.mod(idx, period)
    return jnp.where(m >= n, period - 1 - m, m), None
  valid = (idx >= 0) & (idx <= n - 1)
  return jnp.clip(idx, 0, n - 1), valid


@functools.partial(jax.jit, static_argnames=("mode",))
def remap(images_BxHxWxC, coords_BxhxWx2, mode="edge"):
  """Bilinear resampling of images at pixel coordinates.

  out[b, i, j] = bilinear(images[b], x=coords[b, i, j, 0], y=coords[b, i, j, 1]).

  Args:
    images_BxHxWxC: float array (B, H, W, C).
    coords_BxhxWx2: float array (B, h, w, 2) of (x, y) pixel index coordinates.
    mode: border handling: "edge" (replicate the border pixel, like
      scipy.ndimage.map_coordinates mode="nearest"), "reflect" (half-sample
      symmetric, like scipy mode="reflect") or "zeros" (zero padding with
      interpolation, like scipy mode="grid-constant" with cval=0).

  Returns:
    (B, h, w, C) array of the images' dtype.
  """
  if mode not in BORDER_MODES:
    raise UserError(f"unknown remap mode {mode!r}; expected one of {BORDER_MODES}")
  if images_BxHxWxC.ndim != 4 or coords_BxhxWx2.ndim != 4 or coords_BxhxWx2.shape[-1] != 2:
    raise UserError(
        f"remap expects images (B,H,W,C) and coords (B,h,w,2); got "
        f"{images_BxHxWxC.shape} and {coords_BxhxWx2.shape}")
  _, height, width, _ = images_BxHxWxC.shape
  coords = coords_BxhxWx2.astype(jnp.float32)
  x, y = coords[..., 0], coords[..., 1]
  x0f, y0f = jnp.floor(x), jnp.floor(y)
  fx, fy = (x - x0f)[..., None], (y - y0f)[..., None]
  x0, y0 = x0f.astype(jnp.int32), y0f.astype(jnp.int32)
  xs = [_fold_index(x0, width, mode), _fold_index(x0 + 1, width, mode)]
  ys = [_fold_index(y0, height, mode), _fold_index(y0 + 1, height, mode)]

  def gather(img, yi, xi):  # img (H,W,C), yi/xi (h,w) -> (h,w,C)
    return img[yi, xi]

  gather_b = jax.vmap(gather)
  out = jnp.zeros(coords.shape[:3] + images_BxHxWxC.shape[-1:], jnp.float32)
  for (yi, yvalid), wy in zip(ys, (1.0 - fy, fy)):
    for (xi, xvalid), wx in zip(xs, (1.0 - fx, fx)):
      values = gather_b(images_BxHxWxC, yi, xi).astype(jnp.float32)
      weight = wy * wx
      if yvalid is not None:
        weight = weight * (yvalid & xvalid)[..., None].astype(jnp.float32)
      out = out + weight * values
  return out.astype(images_BxHxWxC.dtype)


def pixel_grid(height, width):
  """(H, W, 2) float32 grid of (x, y) pixel index coordinates."""
  ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                        jnp.arange(width, dtype=jnp.float32), indexing="ij")
  return jnp.stack([xs, ys], axis=-1)


def apply_homogeneous(matrices_Bx3x3, points_Bx___x2):
  """Applies (B,3,3) matrices to (B, ..., 2) points (x, y)."""
  lin = jnp.einsum("bij,b...j->b...i", matrices_Bx3x3[:, :2, :2], points_Bx___x2)
  shift = matrices_Bx3x3[:, :2, 2].reshape((-1,) + (1,) * (points_Bx___x2.ndim - 2) + (2,))
  return lin + shift


# ----------------------------------------------------------------------------
# Random warp
# ----------------------------------------------------------------------------
def _interp_matrix(n_out, n_ctrl, interpolation):
  """(n_out, n_ctrl) numpy matrix interpolating control values at pixels.

  Control point g sits at pixel g * (n_out - 1) / (n_ctrl - 1) (the first and
  last at the border pixel centres), so pixels on a control point take its
  value exactly. "linear" is piecewise linear, "cubic" Catmull-Rom with the
  control grid clamped at its ends.
  """
  if n_ctrl == 1 or n_out == 1:
    m = np.zeros((n_out, n_ctrl), np.float32)
    m[:, 0] = 1.0
    return m
  t = np.arange(n_out, dtype=np.float64) * (n_ctrl - 1) / (n_out - 1)
  m = np.zeros((n_out, n_ctrl), np.float64)
  if interpolation == "linear":
    for g in range(n_ctrl):
      m[:, g] = np.maximum(0.0, 1.0 - np.abs(t - g))
  elif interpolation == "cubic":
    i = np.minimum(np.floor(t).astype(int), n_ctrl - 2)
    f = t - i
    taps = (  # Catmull-Rom weights for control points i-1, i, i+1, i+2.
        0.5 * (-f**3 + 2 * f**2 - f),
        0.5 * (3 * f**3 - 5 * f**2 + 2),
        0.5 * (-3 * f**3 + 4 * f**2 + f),
        0.5 * (f**3 - f**2),
    )
    rows = np.arange(n_out)
    for k, w in zip(range(-1, 3), taps):
      np.add.at(m, (rows, np.clip(i + k, 0, n_ctrl - 1)), w)
  else:
    raise UserError(f"unknown warp interpolation {interpolation!r}; use 'linear' or 'cubic'")
  return m.astype(np.float32)


def interpolate_control_grid(offsets_BxGhxGwx2, height, width, interpolation="linear"):
  """Upsamples a sparse control-point grid of offsets to a dense (B, H, W, 2) field.

  Args:
    offsets_BxGhxGwx2: float (B, Gh, Gw, 2) offsets at the control points, in pixels.
    height, width: output size (python ints).
    interpolation: "linear" (like faceswap's cv2.resize INTER_LINEAR) or "cubic".

  Returns:
    float32 (B, H, W, 2); equal to the control offsets at the control pixels.
  """
  _, gh, gw, _ = offsets_BxGhxGwx2.shape
  mh = jnp.asarray(_interp_matrix(height, gh, interpolation))
  mw = jnp.asarray(_interp_matrix(width, gw, interpolation))
  return jnp.einsum("hg,bgkc,wk->bhwc", mh, offsets_BxGhxGwx2.astype(jnp.float32), mw)


@functools.partial(jax.jit, static_argnames=("batch", "height", "width", "grid_size", "interpolation"))
def random_warp_field(key, batch, height, width, grid_size=5, jitter=DEFAULT_WARP_JITTER,
                      interpolation="linear"):
  """Random smooth displacement field (B, H, W, 2) in pixels ((dx, dy) per pixel).

  Each of the grid_size x grid_size control points gets independent Gaussian
  offsets with standard deviation `jitter * width` (x) and `jitter * height` (y).
  """
  if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 2:
    raise UserError(f"warp grid_size must be an int >= 2, got {grid_size!r}")
  noise = jax.random.normal(key, (batch, grid_size, grid_size, 2), jnp.float32)
  scale = jnp.asarray([width, height], jnp.float32).reshape(1, 1, 1, 2) * jitter
  return interpolate_control_grid(noise * scale, height, width, interpolation)


@functools.partial(jax.jit, static_argnames=("grid_size", "interpolation", "mode"))
def random_warp(key, images_BxHxWxC, grid_size=5, jitter=DEFAULT_WARP_JITTER,
                interpolation="linear", mode="edge"):
  """faceswap-style random warp: jittered control grid -> smooth field -> bilinear remap.

  Args:
    key: jax.random key.
    images_BxHxWxC: float32 (B, H, W, C) in [0, 1].
    grid_size: control points per side (faceswap: 5).
    jitter: std of the control-point offsets as a fraction of the image size
      (faceswap: 5/256). 0 gives the identity.
    interpolation: "linear" or "cubic" upsampling of the control grid.
    mode: border mode of `remap`.

  Returns:
    float32 (B, H, W, C), each image warped with its own random field.
  """
  b, h, w, _ = images_BxHxWxC.shape
  field = random_warp_field(key, b, h, w, grid_size, jitter, interpolation)
  return remap(images_BxHxWxC, pixel_grid(h, w)[None] + field, mode)


# ----------------------------------------------------------------------------
# Random affine (rotation, zoom, shift, horizontal flip)
# ----------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("batch", "height", "width"))
def random_affine_matrices(key, batch, height, width, rotation_deg=10.0, zoom=0.05,
                           shift=0.05, flip_prob=0.5):
  """Random per-image inverse affine maps (output pixel -> source pixel).

  The forward transform (source -> output), as in faceswap's `transform` plus
  `random_flip`: rotate by U(-rotation_deg, rotation_deg) degrees and scale by
  U(1 - zoom, 1 + zoom) about the image centre, shift by U(-shift, shift) * size
  pixels per axis, then flip horizontally with probability flip_prob.

  Returns:
    float32 (B, 3, 3) homogeneous matrices mapping output (x, y, 1) to source (x, y, 1).
  """
  # One draw for all parameters (fewer RNG kernels to compile): columns are
  # rotation, zoom, shift x, shift y, flip, each U(-1, 1).
  u = jax.random.uniform(key, (batch, 5), jnp.float32, minval=-1.0, maxval=1.0)
  angle = jnp.deg2rad(rotation_deg) * u[:, 0]
  scale = 1.0 + zoom * u[:, 1]
  size = jnp.asarray([[width, height]], jnp.float32)
  offset = shift * size * u[:, 2:4]
  flip = (u[:, 4] + 1.0) * 0.5 < flip_prob
  cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
  # Output -> source: undo the flip, undo the shift, undo rotation/zoom about the centre.
  xo_sign = jnp.where(flip, -1.0, 1.0)            # x_unflipped = sign * (x - cx) + cx
  cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale
  # Forward rotation is [[c, s], [-s, c]] (cv2.getRotationMatrix2D); its inverse is
  # the transpose [[c, -s], [s, c]], divided by the scale.
  a00, a01 = cos * xo_sign, -sin
  a10, a11 = sin * xo_sign, cos
  # source = A_inv (F (p - c) - t) + c with F = diag(sign, 1) and A_inv the inverse
  # rotation/zoom; i.e. source = M p + (c - A_inv t - M c) with M = A_inv F.
  tx, ty = offset[:, 0], offset[:, 1]
  rx = -(cos * tx - sin * ty)   # -A_inv t
  ry = -(sin * tx + cos * ty)
  t0 = cx + rx - (a00 * cx + a01 * cy)
  t1 = cy + ry - (a10 * cx + a11 * cy)
  row0 = jnp.stack([a00, a01, t0], -1)
  row1 = jnp.stack([a10, a11, t1], -1)
  row2 = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 1.0], jnp.float32), (batch, 3))
  return jnp.stack([row0, row1, row2], axis=1).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("mode",))
def random_affine(key, images_BxHxWxC, rotation_deg=10.0, zoom=0.05, shift=0.05,
                  flip_prob=0.5, mode="edge"):
  """Random rotation/zoom/shift and horizontal flip per image (one bilinear resampling).

  Args:
    key: jax.random key.
    images_BxHxWxC: float32 (B, H, W, C) in [0, 1].
    rotation_deg, zoom, shift, flip_prob: see `random_affine_matrices`.
    mode: border mode of `remap` (faceswap replicates the border: "edge").

  Returns:
    float32 (B, H, W, C).
  """
  b, h, w, _ = images_BxHxWxC.shape
  mats = random_affine_matrices(key, b, h, w, rotation_deg, zoom, shift, flip_prob)
  grid = jnp.broadcast_to(pixel_grid(h, w)[None], (b, h, w, 2))
  return remap(images_BxHxWxC, apply_homogeneous(mats, grid), mode)


def transform_landmarks(matrices_Bx3x3, landmarks_BxNx2, height, width):
  """Moves landmarks ((x, y) in [-1, 1]) with the images an affine map was applied to.

  Args:
    matrices_Bx3x3: inverse maps from `random_affine_matrices` (output -> source).
    landmarks_BxNx2: float (B, N, 2) source landmarks in [-1, 1].
    height, width: image size in pixels.

  Returns:
    float32 (B, N, 2) landmarks in the output images, in [-1, 1] units.
  """
  size = jnp.asarray([[[width, height]]], jnp.float32)
  px = (landmarks_BxNx2.astype(jnp.float32) + 1.0) / 2.0 * size - 0.5
  lin = matrices_Bx3x3[:, :2, :2]
  det = lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]
  inv = jnp.stack([jnp.stack([lin[:, 1, 1], -lin[:, 0, 1]], -1),
                   jnp.stack([-lin[:, 1, 0], lin[:, 0, 0]], -1)], 1) / det[:, None, None]
  # forward(p) = inv (p - t) for the inverse map source = lin p + t.
  out = jnp.einsum("bij,bnj->bni", inv, px - matrices_Bx3x3[:, None, :2, 2])
  return (out + 0.5) / size * 2.0 - 1.0
