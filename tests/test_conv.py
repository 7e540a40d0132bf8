"""deepjax.ops.conv: the two stride-1 convolution formulations (and small_map_conv) equal
lax.conv, values and gradients, and Conv2d modules pick one by shape with the same
parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.models import hourglass as hg
from deepjax.ops import conv

SHAPES = [  # (hw, cin, cout, k, (ph, pw))
    (2, 5, 7, 3, (1, 1)), (1, 4, 3, 3, (1, 1)), (4, 3, 2, 3, (1, 1)), (10, 3, 4, 7, (0, 0)),
    (3, 2, 3, 7, (3, 3)), (9, 6, 1, 7, (3, 3)), (8, 5, 11, 5, (2, 1)), (6, 3, 2, 1, (0, 0))]


def lax_conv(x, w, p):
  return jax.lax.conv_general_dilated(x, w, (1, 1), ((p[0], p[0]), (p[1], p[1])),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("kind", ["im2col", "lax"])
@pytest.mark.parametrize("hw,cin,cout,k,p", SHAPES)
def test_formulations_equal_lax_conv_with_gradients(kind, hw, cin, cout, k, p):
  rng = np.random.default_rng(hw * 100 + k * 10 + cout)
  x = jnp.asarray(rng.standard_normal((2, hw, hw, cin)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)
  fn = {"im2col": conv.conv_im2col, "lax": conv.conv_lax}[kind]
  ref_out = jax.jit(lambda x, w: lax_conv(x, w, p))(x, w)
  out = jax.jit(lambda x, w: fn(x, w, p))(x, w)
  assert out.shape == ref_out.shape
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref_out), atol=1e-4, rtol=1e-5)
  cot = jnp.asarray(rng.standard_normal(ref_out.shape), jnp.float32)
  g_ref = jax.jit(jax.grad(lambda x, w: jnp.sum(lax_conv(x, w, p) * cot), argnums=(0, 1)))(x, w)
  g = jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w, p) * cot), argnums=(0, 1)))(x, w)
  for a, b in zip(g, g_ref):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-5)


def test_formulation_rules():
  assert conv.formulation((8, 4, 4, 512), (3, 3, 512, 512), (1, 1)) == "im2col"
  assert conv.formulation((8, 64, 64, 64), (7, 7, 64, 3), (3, 3)) == "lax"
  assert conv.formulation((8, 64, 64, 64), (3, 3, 64, 64), (1, 1)) == "lax"
  assert conv.formulation((8, 64, 64, 64), (1, 1, 64, 3), (0, 0)) == "lax"
  assert conv.formulation((8, 8, 8, 64), (3, 3, 64, 64), (1, 1), small_maps=64) == "im2col"


@pytest.mark.parametrize("hw,cin,cout,k,p", SHAPES)
def test_conv2d_module_equals_lax_conv(hw, cin, cout, k, p):
  """hourglass.Conv2d (params kernel HWIO, bias) whatever formulation it picks."""
  rng = np.random.default_rng(hw + cout)
  x = jnp.asarray(rng.standard_normal((2, hw, hw, cin)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)
  bias = jnp.asarray(rng.standard_normal((cout,)), jnp.float32)
  module = hg.Conv2d(cout, (k, k), p)
  out = jax.jit(module.apply)({"params": {"kernel": w, "bias": bias}}, x)
  ref = lax_conv(x, w, p) + bias.reshape(1, 1, 1, -1)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-4, rtol=1e-5)


def _assert_same_values_and_gradients(fast, plain, params, x):
  """Two flax modules with the same parameters: equal outputs and gradients (params, x)."""
  def loss(m):
    return lambda p, x_: jnp.sum(jnp.sin(m.apply(p, x_)))
  np.testing.assert_allclose(fast.apply(params, x), plain.apply(params, x), atol=1e-5)
  g_fast = jax.grad(loss(fast), argnums=(0, 1))(params, x)
  g_plain = jax.grad(loss(plain), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_small_map_conv_matches_xla_with_gradients():
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(0), (3, 4, 4, 5))
  plain = nn.Conv(6, (3, 3))
  fast = nn.Conv(6, (3, 3), conv_general_dilated=conv.small_map_conv)
  params = plain.init(jax.random.key(1), x)
  _assert_same_values_and_gradients(fast, plain, params, x)
  # larger maps take XLA's own convolution
  y = jax.random.normal(jax.random.key(2), (1, 8, 8, 5))
  np.testing.assert_allclose(fast.apply(params, y), plain.apply(params, y), atol=1e-5)


@pytest.mark.parametrize("k,stride,pad,hw", [(7, 2, 3, 16), (3, 2, 1, 5), (1, 2, 0, 8)])
def test_small_map_conv_strided_matches_xla_with_gradients(k, stride, pad, hw):
  """Strided convolutions on small inputs (ResNet-18's at 64 px) take the explicit input
  gradient: values and gradients equal XLA's convolution."""
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(0), (2, hw, hw, 3))
  kw = dict(strides=(stride, stride), padding=((pad, pad), (pad, pad)), use_bias=False)
  plain = nn.Conv(4, (k, k), **kw)
  fast = nn.Conv(4, (k, k), conv_general_dilated=conv.small_map_conv, **kw)
  params = plain.init(jax.random.key(1), x)
  assert "custom_vjp_call" in str(jax.make_jaxpr(lambda x_: fast.apply(params, x_))(x))
  _assert_same_values_and_gradients(fast, plain, params, x)


def test_im2col_with_asymmetric_padding_equals_lax_conv():
  """((top, bottom), (left, right)) padding, as flax's nn.Conv passes it to small_map_conv."""
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.standard_normal((2, 3, 4, 5)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 5, 4)), jnp.float32)
  pad = ((1, 0), (2, 1))
  ref = jax.lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert conv.formulation(x.shape, w.shape, pad) == "im2col"
  for fn in (conv.conv_im2col, conv.conv_lax, conv.conv2d):
    np.testing.assert_allclose(np.asarray(fn(x, w, pad)), np.asarray(ref), atol=1e-4, rtol=1e-5)
