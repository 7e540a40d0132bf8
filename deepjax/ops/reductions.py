"""Per-channel sums, conv biases and training-mode BatchNorm with fast CPU reductions.

XLA:CPU (jax 0.10) reduces a (B, H, W, C) activation over B, H and W at 1-3 GB/s: a
BatchNorm's statistics of one 8x64x64x128 map take ~10 ms, a conv bias's gradient as
long, and the first-order motion model has ~100 of them per train step. The same sum as
a contraction with a ones vector over row blocks runs 5-20x faster
(`python -m deepjax.ops.reductions_bench`, or the `reductions` row of
`python -m deepjax.bench`). Everything here is numerically the plain formula
(tests/test_reductions.py compares values and gradients with jnp.sum and
flax.linen.BatchNorm).

- `channel_sum(x)`: x (..., C) -> (C,), the sum over every other axis.
- `add_channel_bias(x, bias)`: x + bias whose bias gradient is a `channel_sum`.
- `batch_norm_train(x, scale, bias, eps)`: (y, mean, var) of BatchNorm in training mode
  (biased variance E[x^2] - E[x]^2 as flax's default), with a hand-written backward pass
  whose reductions are `channel_sum`s. Under `jit` with the batch sharded over devices,
  the sums are over the global batch (XLA adds the all-reduce), as the reference's
  synchronised BatchNorm.
"""
import functools

import jax
import jax.numpy as jnp

_BLOCK = 256  # rows per block of the ones-vector contraction


def _row_blocks(n: int) -> int:
  """Rows per block: the largest divisor of n that is at most _BLOCK (1 if n is prime)."""
  for m in range(min(_BLOCK, n), 0, -1):
    if n % m == 0:
      return m
  return 1


def _row(v, ndim: int):
  """(C,) -> (1, ..., 1, C) for broadcasting against an ndim-dimensional array."""
  return v.reshape((1,) * (ndim - 1) + (-1,))


def _explicitly_sharded(x) -> bool:
  """True for an array typed with an explicit-mode sharding (jax.sharding.AxisType.Explicit
  meshes), where the block reshape would need an out_sharding: use the plain sum there."""
  spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
  return spec is not None and any(s is not None for s in spec)


def channel_sum(x):
  """Sum of x (..., C) over all axes but the last -> (C,), in x's dtype.

  x is viewed as (B, K, M, C) with M rows per block, reshaping only the axes after the
  leading (batch) one, so a batch sharded over devices stays where it is (XLA sums the
  partial results across devices); B and K are contracted with a ones matrix in one dot
  (the fastest of the forms measured), then M.
  """
  c = x.shape[-1]
  if x.ndim < 2 or x.size == 0 or _explicitly_sharded(x):
    return jnp.sum(x, axis=tuple(range(x.ndim - 1)))
  b = x.shape[0]
  n = x.size // (b * c)
  m = _row_blocks(n)
  if m < 8:  # tiny or awkward (prime-sized) maps: the plain reduction
    return jnp.sum(x.reshape((b, n, c)), axis=(0, 1))
  blocks = x.reshape(b, n // m, m, c)
  partial = jnp.einsum("bk,bkmc->mc", jnp.ones((b, n // m), x.dtype), blocks)
  return jnp.einsum("m,mc->c", jnp.ones((m,), x.dtype), partial)


@jax.custom_vjp
def add_channel_bias(x, bias):
  """x (..., C) + bias (C,); the bias gradient is channel_sum(g)."""
  return x + _row(bias, x.ndim)


def _bias_fwd(x, bias):
  return x + _row(bias, x.ndim), None


def _bias_bwd(_, g):
  return g, channel_sum(g)


add_channel_bias.defvjp(_bias_fwd, _bias_bwd)


def _stats(x, axis_count: float):
  mean = channel_sum(x) / axis_count
  mean_sq = channel_sum(x * x) / axis_count
  return mean, jnp.maximum(mean_sq - mean * mean, 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x, scale, bias, eps: float):
  """Training-mode BatchNorm of x (..., C) over every axis but the last.

  Returns (y, mean, var): y = (x - mean) / sqrt(var + eps) * scale + bias, and the batch
  statistics (biased variance), for the running averages. float32.
  """
  return _bn_fwd(x, scale, bias, eps)[0]


def _bn_fwd(x, scale, bias, eps):
  n = x.size // x.shape[-1]
  mean, var = _stats(x, float(n))
  inv = jax.lax.rsqrt(var + eps)
  d = x.ndim
  xhat = (x - _row(mean, d)) * _row(inv, d)
  y = xhat * _row(scale, d) + _row(bias, d)
  return (y, mean, var), (x, mean, inv, scale)


def _bn_bwd(eps, res, cts):  # pylint: disable=unused-argument
  x, mean, inv, scale = res  # xhat is recomputed, not kept: one activation-sized residual
  g, g_mean, g_var = cts
  n = float(x.size // x.shape[-1])
  d = x.ndim
  xhat = (x - _row(mean, d)) * _row(inv, d)
  g_bias = channel_sum(g)
  g_scale = channel_sum(g * xhat)
  gx = _row(scale * inv / n, d) * (n * g - _row(g_bias, d) - xhat * _row(g_scale, d))
  # The statistics outputs are usually not differentiated (zero cotangents); when they
  # are: d mean / dx = 1/n, d var / dx = 2 (x - mean) / n.
  gx = gx + _row(g_mean / n, d) + _row(g_var * (2.0 / n), d) * (x - _row(mean, d))
  return gx, g_scale, g_bias


batch_norm_train.defvjp(_bn_fwd, _bn_bwd)
