"""Hourglass blocks of the first-order motion model (reference: modules/util.py), NHWC.

Layers keep the reference's names (`conv`, `norm`, `down_blocks_0`, ...) so a PyTorch
checkpoint maps onto them by name: `a.b.0.c.weight` -> `a/b_0/c/kernel` (OIHW -> HWIO),
BatchNorm `weight/bias` -> params `scale/bias`, `running_mean/var` -> batch_stats `mean/var`.

BatchNorm follows torch's BatchNorm2d defaults (eps 1e-5, momentum 0.1 = flax 0.9); flax
updates the running variance with the biased batch variance (torch uses the unbiased one);
the difference is a factor n / (n - 1) over n = B*H*W values, negligible here. Under `jit`
with the batch sharded over devices the statistics are over the global batch (as the
reference's synchronised BatchNorm).

Convolution kernels start as torch's default (uniform, bound 1 / sqrt(fan_in)); biases
start at zero (torch draws them from the same uniform).

`anti_alias_interpolate` is the reference's `AntiAliasInterpolation2d`: a Gaussian blur
with sigma = (1 / scale - 1) / 2 and kernel size 2 round(4 sigma) + 1 (zero padding), then
nearest-neighbour subsampling that picks rows/columns floor(i / scale).
"""
import math
from typing import Callable, List, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepjax.ops import conv, reductions

torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")

IntPair = Union[int, Tuple[int, int]]


def _pair(v: IntPair) -> Tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class Conv2d(nn.Module):
  """A torch-like Conv2d (stride 1, symmetric zero padding), params `kernel` (HWIO), `bias`.

  The convolution is `deepjax.ops.conv.conv2d`: im2col on tiny maps (hourglass bottoms),
  a tap matmul for few output channels (the 7x7 heads), XLA's convolution otherwise; the
  same maths and parameters either way (`tests/test_conv.py`).
  """
  features: int
  kernel_size: Tuple[int, int]
  padding: Tuple[int, int]
  kernel_init: Callable = torch_kernel_init
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x_BxHxWxC):
    kh, kw = self.kernel_size
    ph, pw = self.padding
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x_BxHxWxC.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    y = conv.conv2d(x_BxHxWxC, kernel, (ph, pw))
    return reductions.add_channel_bias(y, bias)


def conv2d(features: int, kernel_size: IntPair, padding: IntPair, name: str,
           **kw) -> Conv2d:
  """A torch-like Conv2d: explicit symmetric zero padding, torch default kernel init."""
  return Conv2d(features, _pair(kernel_size), _pair(padding), name=name, **kw)


class BatchNorm(nn.Module):
  """flax.linen.BatchNorm's variables and maths (feature axis -1, biased batch variance,
  running averages with `momentum`), with its reductions as fast channel sums
  (deepjax.ops.reductions). params `scale`, `bias`; batch_stats `mean`, `var`.

  `groups` G > 1 (training only): the batch (B*G, H, W, C) is G interleaved sub-batches
  (row b*G + g in group g) normalised with their own statistics, and the running averages
  take the G groups' statistics one after the other: exactly what G calls on the G
  sub-batches in order would do, in one call."""
  use_running_average: bool
  momentum: float = 0.9
  epsilon: float = 1e-5
  groups: int = 1

  @nn.compact
  def __call__(self, x_BxHxWxC):
    c = x_BxHxWxC.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    if self.use_running_average:
      mul = (jax.lax.rsqrt(ra_var.value + self.epsilon) * scale).reshape(1, 1, 1, -1)
      return (x_BxHxWxC - ra_mean.value.reshape(1, 1, 1, -1)) * mul + bias.reshape(1, 1, 1, -1)
    y, mean, var = reductions.batch_norm_train(x_BxHxWxC, scale, bias, self.epsilon,
                                               self.groups)
    if not self.is_initializing():
      m = self.momentum
      means = [mean] if self.groups == 1 else list(mean)
      variances = [var] if self.groups == 1 else list(var)
      new_mean, new_var = ra_mean.value, ra_var.value
      for mu, v in zip(means, variances):
        new_mean = m * new_mean + (1.0 - m) * jax.lax.stop_gradient(mu)
        new_var = m * new_var + (1.0 - m) * jax.lax.stop_gradient(v)
      ra_mean.value, ra_var.value = new_mean, new_var
    return y


def batch_norm(train: bool, name: str = "norm", groups: int = 1) -> BatchNorm:
  return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, groups=groups,
                   name=name)


NORMS = ("batch", "instance")


def make_norm(kind: str, train: bool, name: str = "norm", groups: int = 1) -> nn.Module:
  """The blocks' normalisation: "batch" (BatchNorm above, first-order motion) or
  "instance" (torch InstanceNorm2d(affine=True): per-sample statistics over H, W, eps
  1e-5, params `scale`, `bias`, no running averages; thin-plate-spline motion)."""
  if kind == "instance":
    return nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False, name=name)
  if kind != "batch":
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")
  return batch_norm(train, name, groups)


def avg_pool2(x_BxHxWxC):
  """torch AvgPool2d(2): 2x2 mean, stride 2, odd remainders dropped."""
  return nn.avg_pool(x_BxHxWxC, (2, 2), strides=(2, 2), padding="VALID")


def upsample_nearest2(x_BxHxWxC):
  """torch interpolate(scale_factor=2) (nearest): each pixel repeated 2x2."""
  return jnp.repeat(jnp.repeat(x_BxHxWxC, 2, axis=1), 2, axis=2)


class ConvNormBlock(nn.Module):
  """The fields and the conv -> BatchNorm -> ReLU of the blocks below.

  `norm_groups`: BatchNorm groups (see BatchNorm); `norm`: see `make_norm`. Layers `conv`,
  `norm`.
  """
  out_features: int
  kernel_size: IntPair = 3
  padding: IntPair = 1
  norm_groups: int = 1
  norm: str = "batch"

  def conv_norm_relu(self, x, train: bool):
    x = conv2d(self.out_features, self.kernel_size, self.padding, "conv")(x)
    return nn.relu(make_norm(self.norm, train, groups=self.norm_groups)(x))


class DownBlock2d(ConvNormBlock):
  """conv -> BatchNorm -> ReLU -> 2x2 average pool. (B,H,W,C) -> (B,H/2,W/2,out)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    return avg_pool2(self.conv_norm_relu(x, train))


class UpBlock2d(ConvNormBlock):
  """nearest x2 upsample -> conv -> BatchNorm -> ReLU. (B,H,W,C) -> (B,2H,2W,out)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    return self.conv_norm_relu(upsample_nearest2(x), train)


class SameBlock2d(ConvNormBlock):
  """conv -> BatchNorm -> ReLU at the same resolution."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    return self.conv_norm_relu(x, train)


class ResBlock2d(nn.Module):
  """Pre-activation residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""
  kernel_size: IntPair = 3
  padding: IntPair = 1
  norm: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool = False):
    c = x.shape[-1]
    out = nn.relu(make_norm(self.norm, train, "norm1")(x))
    out = conv2d(c, self.kernel_size, self.padding, "conv1")(out)
    out = nn.relu(make_norm(self.norm, train, "norm2")(out))
    out = conv2d(c, self.kernel_size, self.padding, "conv2")(out)
    return out + x


def hourglass_features(block_expansion: int, i: int, max_features: int) -> int:
  """min(max_features, block_expansion * 2**i): channel width at depth i."""
  return min(max_features, block_expansion * (2 ** i))


class HourglassShape(nn.Module):
  """The fields of the hourglass and its halves: width at depth i is
  `hourglass_features(block_expansion, i, max_features)`; `norm_groups`: see BatchNorm;
  `norm`: see `make_norm`."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  norm_groups: int = 1
  norm: str = "batch"

  def shape_fields(self):
    """(block_expansion, num_blocks, max_features, norm_groups, norm), the fields in order."""
    return (self.block_expansion, self.num_blocks, self.max_features, self.norm_groups,
            self.norm)


class Encoder(HourglassShape):
  """num_blocks DownBlock2d; returns [x, d1, ..., d_num_blocks] (skips for the decoder)."""

  @nn.compact
  def __call__(self, x, train: bool = False) -> List[jax.Array]:
    outs = [x]
    for i in range(self.num_blocks):
      feats = hourglass_features(self.block_expansion, i + 1, self.max_features)
      outs.append(DownBlock2d(feats, norm_groups=self.norm_groups, norm=self.norm,
                              name=f"down_blocks_{i}")(outs[-1], train))
    return outs


class Decoder(HourglassShape):
  """UpBlock2d per level, each followed by concatenation [up, skip] on channels.

  Output channels: block_expansion + channels of the encoder input (`out_filters`).
  With `all_outputs`, the list of every level's output (coarsest first, the last one the
  usual output; the reference's `mode=1`).
  """
  all_outputs: bool = False

  @nn.compact
  def __call__(self, skips: Sequence[jax.Array], train: bool = False):
    skips = list(skips)
    out = skips.pop()
    outs = []
    for n, i in enumerate(range(self.num_blocks)[::-1]):
      feats = hourglass_features(self.block_expansion, i, self.max_features)
      out = UpBlock2d(feats, norm_groups=self.norm_groups, norm=self.norm,
                      name=f"up_blocks_{n}")(out, train)
      out = jnp.concatenate([out, skips.pop()], axis=-1)
      outs.append(out)
    return outs if self.all_outputs else out


class Hourglass(HourglassShape):
  """U-Net-like encoder/decoder. (B,H,W,C) -> (B,H,W,block_expansion + C).

  H and W must be divisible by 2**num_blocks. `all_outputs`: see Decoder.
  """
  all_outputs: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    div = 2 ** self.num_blocks
    if x.shape[1] % div or x.shape[2] % div:
      raise ValueError(f"hourglass input {x.shape[1:3]} not divisible by {div}")
    skips = Encoder(*self.shape_fields(), name="encoder")(x, train)
    return Decoder(*self.shape_fields(), all_outputs=self.all_outputs,
                   name="decoder")(skips, train)


def gaussian_kernel_1d(scale: float) -> np.ndarray:
  """Normalised 1-D factor of the reference's anti-aliasing kernel (float32)."""
  sigma = (1.0 / scale - 1.0) / 2.0
  size = 2 * round(sigma * 4) + 1
  grid = np.arange(size, dtype=np.float64)
  g = np.exp(-(grid - (size - 1) / 2.0) ** 2 / (2.0 * sigma ** 2))
  return (g / g.sum()).astype(np.float32)


def anti_alias_interpolate(x_BxHxWxC, scale: float):
  """The reference's AntiAliasInterpolation2d(scale) on NHWC: blur, then pick.

  The 2-D Gaussian kernel of the reference is the outer product of two normalised 1-D
  kernels, so the blur is done separably; only the picked rows/columns are computed
  (a strided convolution) when 1 / scale is an integer. Output (B, floor(H*scale),
  floor(W*scale), C).
  """
  if scale == 1.0:
    return x_BxHxWxC
  b, h, w, c = x_BxHxWxC.shape
  g = gaussian_kernel_1d(scale)
  ka = len(g) // 2
  out_h, out_w = int(math.floor(h * scale)), int(math.floor(w * scale))
  inv = 1.0 / scale
  step = int(round(inv))
  strided = abs(inv - step) < 1e-9
  stride = step if strided else 1
  dtype = x_BxHxWxC.dtype
  dn = ("NHWC", "HWIO", "NHWC")
  kh = jnp.asarray(np.tile(g.reshape(-1, 1, 1, 1), (1, 1, 1, c)), dtype)
  kw = jnp.asarray(np.tile(g.reshape(1, -1, 1, 1), (1, 1, 1, c)), dtype)
  y = jax.lax.conv_general_dilated(x_BxHxWxC, kh, (stride, 1), ((ka, ka), (0, 0)),
                                   dimension_numbers=dn, feature_group_count=c)
  y = jax.lax.conv_general_dilated(y, kw, (1, stride), ((0, 0), (ka, ka)),
                                   dimension_numbers=dn, feature_group_count=c)
  if strided:
    return y[:, :out_h, :out_w]
  rows = np.minimum(np.floor(np.arange(out_h) * inv).astype(np.int64), h - 1)
  cols = np.minimum(np.floor(np.arange(out_w) * inv).astype(np.int64), w - 1)
  return y[:, rows][:, :, cols]
