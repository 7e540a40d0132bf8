"""Image, latent and adversarial losses (pure jnp functions, jit-able).

Images are float32 NHWC in [0, 1]. Landmarks are (x, y) in [-1, 1] with the
align_corners=False convention of docs/CONTRACTS.md. Reductions are stated per
function: scalars for training losses, (B,) for per-image metrics.

The perceptual (VGG) losses live elsewhere; this file has no learned parts.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.errors import UserError
from deepjax.ops import face_hull

# iBUG 300-W 68-point indices (docs/CONTRACTS.md).
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
MOUTH = tuple(range(48, 68))


# ----------------------------------------------------------------------------
# Pixel losses
# ----------------------------------------------------------------------------
def _weighted_mean(values, weight):
  """Mean of `values`, or sum(weight * values) / sum(weight) with weight broadcast."""
  values = values.astype(jnp.float32)
  if weight is None:
    return jnp.mean(values)
  weight = jnp.broadcast_to(jnp.asarray(weight, jnp.float32), values.shape)
  return jnp.sum(weight * values) / jnp.maximum(jnp.sum(weight), 1e-12)


def mse(x, y, weight=None):
  """Mean squared error, scalar float32.

  Args:
    x, y: float arrays of the same shape, e.g. (B, H, W, C).
    weight: optional non-negative weights broadcastable to x.shape, e.g. a
      (B, H, W, 1) map; the result is sum(w * (x - y)^2) / sum(w) with w
      broadcast to the full shape (so all-ones weights give the plain mean).
  """
  return _weighted_mean(jnp.square(x.astype(jnp.float32) - y.astype(jnp.float32)), weight)


def l1(x, y, weight=None):
  """Mean absolute error, scalar float32; weights as in `mse`."""
  return _weighted_mean(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)), weight)


def psnr(x, y, max_val=1.0):
  """Peak signal-to-noise ratio per image, float32 (B,), in dB (inf when x == y).

  Args:
    x, y: float (B, ...) images with values in [0, max_val].
  """
  diff = x.astype(jnp.float32) - y.astype(jnp.float32)
  err = jnp.mean(jnp.square(diff), axis=tuple(range(1, diff.ndim)))
  return 10.0 * jnp.log10(max_val**2 / err)


def total_variation(x):
  """Anisotropic total variation, scalar float32.

  mean |x[:, i+1, j] - x[:, i, j]| + mean |x[:, i, j+1] - x[:, i, j]| for x of
  shape (B, H, W, C): the mean absolute difference between vertical neighbours
  plus that between horizontal neighbours.
  """
  x = x.astype(jnp.float32)
  return (jnp.mean(jnp.abs(x[:, 1:] - x[:, :-1])) +
          jnp.mean(jnp.abs(x[:, :, 1:] - x[:, :, :-1])))


# ----------------------------------------------------------------------------
# SSIM
# ----------------------------------------------------------------------------
def gaussian_kernel_1d(size, sigma):
  """Normalised 1-D Gaussian window (numpy float32 (size,)), centred on the middle tap."""
  t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  k = np.exp(-0.5 * (t / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def _filter_separable(x_BxHxWxC, kernel, padding):
  """Separable filtering with a 1-D kernel along H then W (each channel alike).

  Written as a weighted sum of shifted slices (one per tap), which XLA fuses into a few
  elementwise loops; on CPU this is about 3x faster, forward and backward, than a
  depthwise convolution of the same kernel (docs/performance.md).
  """
  size = kernel.shape[0]
  if padding == "SAME":  # scipy.ndimage's default 'reflect' (half-sample symmetric).
    lo, hi = (size - 1) // 2, size // 2
    x_BxHxWxC = jnp.pad(x_BxHxWxC, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="symmetric")
  taps = [float(t) for t in np.asarray(kernel)]
  h = x_BxHxWxC.shape[1] - size + 1
  out = sum(t * x_BxHxWxC[:, i:i + h] for i, t in enumerate(taps))
  w = out.shape[2] - size + 1
  return sum(t * out[:, :, i:i + w] for i, t in enumerate(taps))


@functools.partial(jax.jit, static_argnames=("filter_size", "sigma", "k1", "k2", "padding"))
def ssim_map(x, y, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03, padding="VALID"):
  """Local SSIM map (Wang et al. 2004) with a Gaussian window.

  Args:
    x, y: float (B, H, W, C) images in [0, max_val].
    max_val: dynamic range L; C1 = (k1 L)^2, C2 = (k2 L)^2.
    filter_size, sigma: Gaussian window (11, 1.5 as tf.image.ssim and skimage
      with gaussian_weights=True).
    padding: "VALID" (only windows inside the image; output (B, H-f+1, W-f+1, C),
      as tf.image.ssim / skimage's mean) or "SAME" (symmetric border padding,
      output (B, H, W, C), handy for weighting with a per-pixel map).

  Returns:
    float32 map of per-pixel, per-channel SSIM values. Statistics use the
    population (biased) covariance, like skimage's use_sample_covariance=False.
  """
  if x.ndim != 4 or x.shape != y.shape:
    raise UserError(f"ssim expects two (B,H,W,C) images of one shape; got {x.shape}, {y.shape}")
  if padding not in ("VALID", "SAME"):
    raise UserError(f"ssim padding must be 'VALID' or 'SAME', got {padding!r}")
  if padding == "VALID" and min(x.shape[1:3]) < filter_size:
    raise UserError(f"ssim needs images of at least {filter_size}x{filter_size} pixels, "
                    f"got {x.shape[1]}x{x.shape[2]}")
  kernel = gaussian_kernel_1d(filter_size, sigma)
  x = x.astype(jnp.float32)
  y = y.astype(jnp.float32)
  c = x.shape[-1]
  # One filtering pass over the five statistics stacked on the channel axis (not the batch
  # axis: a batch sharded over devices would then be resharded, with collectives, to stack
  # and split it).
  stats = _filter_separable(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1), kernel,
                            padding)
  mu_x, mu_y, e_xx, e_yy, e_xy = (stats[..., i * c:(i + 1) * c] for i in range(5))
  var_x = e_xx - mu_x * mu_x
  var_y = e_yy - mu_y * mu_y
  cov = e_xy - mu_x * mu_y
  c1 = (k1 * max_val) ** 2
  c2 = (k2 * max_val) ** 2
  num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
  den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
  return num / den


def ssim(x, y, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03):
  """Mean SSIM per image, float32 (B,), over the 'valid' map and all channels.

  Same definition as tf.image.ssim and skimage.metrics.structural_similarity
  (gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel mean).
  """
  smap = ssim_map(x, y, max_val, filter_size, sigma, k1, k2)
  return jnp.mean(smap, axis=(1, 2, 3))


def dssim(x, y, max_val=1.0, filter_size=11, sigma=1.5):
  """Structural dissimilarity loss, scalar float32: mean over the batch of (1 - SSIM) / 2."""
  return jnp.mean((1.0 - ssim(x, y, max_val, filter_size, sigma)) / 2.0)


# ----------------------------------------------------------------------------
# Frequency-aware losses (sharper reconstructions without a pretrained network)
# ----------------------------------------------------------------------------
def laplacian_pyramid(x_BxHxWxC, levels: int = 3):
  """Laplacian pyramid: `levels` band-pass images then the low-pass residual.

  Band k is (B, H/2^k, W/2^k, C): the level's image minus the bilinear up-sampling of
  its Gaussian-blurred (5 taps, sigma 1), 2x-subsampled copy, which is the next level's
  image. H and W must be divisible by 2^levels.
  """
  if x_BxHxWxC.shape[1] % (2 ** levels) or x_BxHxWxC.shape[2] % (2 ** levels):
    raise UserError(f"a {levels}-level Laplacian pyramid needs sides divisible by "
                    f"{2 ** levels}; got {x_BxHxWxC.shape[1:3]}")
  kernel = gaussian_kernel_1d(5, 1.0)
  bands, cur = [], x_BxHxWxC.astype(jnp.float32)
  for _ in range(levels):
    down = _filter_separable(cur, kernel, "SAME")[:, ::2, ::2]
    bands.append(cur - jax.image.resize(down, cur.shape, "linear"))
    cur = down
  return bands + [cur]


def laplacian_l1(x, y, levels: int = 3):
  """Laplacian-pyramid L1, scalar float32: the sum over the pyramid's levels (bands and
  the low-pass residual) of the mean absolute difference. Each band counts alike, so fine
  detail weighs as much as the coarse image, unlike in a pixel MSE."""
  return sum(jnp.mean(jnp.abs(a - b)) for a, b in zip(laplacian_pyramid(x, levels),
                                                      laplacian_pyramid(y, levels)))


def focal_frequency(x, y, alpha: float = 1.0):
  """Focal frequency loss (Jiang et al., ICCV 2021), scalar float32.

  The squared distance between the 2-D spectra (orthonormal FFT per image and channel)
  of x and y, each frequency weighted by its own distance^alpha scaled to [0, 1] per
  image (the weight is a constant: no gradient flows through it), so the frequencies
  the model gets most wrong, typically the high ones, weigh most.
  """
  fx = jnp.fft.fft2(x.astype(jnp.float32), axes=(1, 2), norm="ortho")
  fy = jnp.fft.fft2(y.astype(jnp.float32), axes=(1, 2), norm="ortho")
  dist = jnp.square(jnp.abs(fx - fy))
  w = jnp.sqrt(dist) ** alpha
  w = w / jnp.maximum(jnp.max(w, axis=(1, 2, 3), keepdims=True), 1e-12)
  return jnp.mean(jax.lax.stop_gradient(w) * dist)


# ----------------------------------------------------------------------------
# Landmark weight map
# ----------------------------------------------------------------------------
def _region_mask(landmarks, indices, pix, dilate, softness):
  pts = landmarks[:, jnp.asarray(indices)]
  d = face_hull.hull_signed_distance(pts, pix) + dilate
  if softness > 0:  # smoothstep across a band of width `softness` centred on the edge
    t = jnp.clip(d / softness + 0.5, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
  return (d >= 0).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("size", "include_brows", "dilate", "softness"))
def landmark_weight_map(landmarks_Bx68x2, size, eye_weight=3.0, mouth_weight=2.0,
                        include_brows=False, dilate=0.03, softness=0.01):
  """Per-pixel loss weights emphasising eyes and mouth.

  1 everywhere, `eye_weight` inside each eye's convex hull (landmarks 36-41 and
  42-47, plus the brow above it when include_brows), `mouth_weight` inside the
  mouth hull (48-67); hulls are dilated by `dilate` and their edges softened
  by a smoothstep over a band of width `softness` centred on the dilated edge
  (both in landmark units: 2 = image width), so weights are exact away from it.

  Args:
    landmarks_Bx68x2: float (B, 68, 2) (x, y) in [-1, 1].
    size: output height = width in pixels (python int).
    eye_weight, mouth_weight: weights inside the regions.
    include_brows: put each brow in its eye's region.
    dilate: outward growth of the hulls, landmark units.
    softness: width of the soft edge band, landmark units (0 = hard edges).

  Returns:
    float32 (B, size, size, 1).
  """
  if landmarks_Bx68x2.ndim != 3 or landmarks_Bx68x2.shape[1:] != (68, 2):
    raise UserError(f"landmark_weight_map expects (B, 68, 2) landmarks, got "
                    f"{landmarks_Bx68x2.shape}")
  lms = landmarks_Bx68x2.astype(jnp.float32)
  centres = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size * 2.0 - 1.0
  gy, gx = jnp.meshgrid(centres, centres, indexing="ij")
  pix = jnp.stack([gx.ravel(), gy.ravel()], axis=-1)  # (P, 2) (x, y)
  right = RIGHT_EYE + (RIGHT_BROW if include_brows else ())
  left = LEFT_EYE + (LEFT_BROW if include_brows else ())
  eyes = jnp.maximum(_region_mask(lms, right, pix, dilate, softness),
                     _region_mask(lms, left, pix, dilate, softness))
  mouth = _region_mask(lms, MOUTH, pix, dilate, softness)
  weight = 1.0 + (eye_weight - 1.0) * eyes + (mouth_weight - 1.0) * mouth
  return weight.reshape(lms.shape[0], size, size, 1)


# ----------------------------------------------------------------------------
# Latent and adversarial losses
# ----------------------------------------------------------------------------
def kl_divergence(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)) per example, float32 (B,).

  0.5 * sum(exp(logvar) + mean^2 - 1 - logvar) over all non-batch axes.
  """
  mean = mean.astype(jnp.float32)
  logvar = logvar.astype(jnp.float32)
  kl = 0.5 * (jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar)
  return jnp.sum(kl.reshape(kl.shape[0], -1), axis=1)


def _sum_of_means(fn, *trees):
  """sum over leaves of mean(fn(leaves...)): logits may be one array or a list (multi-scale)."""
  leaves = [jax.tree.leaves(t) for t in trees]
  total = jnp.zeros((), jnp.float32)
  for parts in zip(*leaves):
    total = total + jnp.mean(fn(*(p.astype(jnp.float32) for p in parts)))
  return total


def lsgan_d_loss(real_logits, fake_logits):
  """Least-squares GAN discriminator loss, scalar: mean((real - 1)^2) + mean(fake^2).

  Logits are arrays of any shape (patch discriminators) or matching lists of
  arrays (multi-scale discriminators; the per-scale losses are summed).
  """
  return (_sum_of_means(lambda r: jnp.square(r - 1.0), real_logits) +
          _sum_of_means(jnp.square, fake_logits))


def lsgan_g_loss(fake_logits):
  """Least-squares GAN generator loss, scalar: mean((fake - 1)^2) (summed over scales)."""
  return _sum_of_means(lambda f: jnp.square(f - 1.0), fake_logits)


def hinge_d_loss(real_logits, fake_logits):
  """Hinge discriminator loss, scalar: mean(relu(1 - real)) + mean(relu(1 + fake))."""
  return (_sum_of_means(lambda r: jax.nn.relu(1.0 - r), real_logits) +
          _sum_of_means(lambda f: jax.nn.relu(1.0 + f), fake_logits))


def hinge_g_loss(fake_logits):
  """Hinge generator loss, scalar: -mean(fake) (summed over scales)."""
  return _sum_of_means(lambda f: -f, fake_logits)
