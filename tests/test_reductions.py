"""deepjax.ops.reductions and hourglass.BatchNorm against the plain formulas / flax."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.models import hourglass
from deepjax.ops import reductions


@pytest.mark.parametrize("shape", [(2, 8, 8, 5), (3, 7, 5, 4), (1, 1, 1, 3), (4, 16, 16, 32)])
def test_channel_sum_equals_sum(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  np.testing.assert_allclose(reductions.channel_sum(x), jnp.sum(x, axis=(0, 1, 2)),
                             rtol=1e-5, atol=1e-4)


def test_bias_gradient_is_channel_sum():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
  b = jnp.arange(6.0)
  f = lambda x, b: jnp.sum(jnp.sin(reductions.add_channel_bias(x, b)))
  g = lambda x, b: jnp.sum(jnp.sin(x + b.reshape(1, 1, 1, -1)))
  for a, e in zip(jax.grad(f, (0, 1))(x, b), jax.grad(g, (0, 1))(x, b)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_batch_norm_train_matches_plain_formula_and_gradients():
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(1), (4, 8, 8, 5))
  scale = jnp.linspace(0.5, 1.5, 5)
  bias = jnp.linspace(-1.0, 1.0, 5)

  def plain(x, scale, bias):
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(x * x, axis=(0, 1, 2)) - mean ** 2
    r = lambda v: v.reshape(1, 1, 1, -1)
    return (x - r(mean)) / jnp.sqrt(r(var) + 1e-5) * r(scale) + r(bias), mean, var

  ours = reductions.batch_norm_train(x, scale, bias, 1e-5)
  for a, e in zip(ours, plain(x, scale, bias)):
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
  w = jax.random.normal(jax.random.key(2), x.shape)

  def loss(fn, with_stats):
    def f(x, s, b):
      y, m, v = fn(x, s, b)
      return jnp.sum(w * jnp.tanh(y)) + (jnp.sum(m * 0.3 + v * 0.2) if with_stats else 0.0)
    return f
  for with_stats in (False, True):
    got = jax.grad(loss(lambda *a: reductions.batch_norm_train(*a, 1e-5), with_stats),
                   (0, 1, 2))(x, scale, bias)
    want = jax.grad(loss(plain, with_stats), (0, 1, 2))(x, scale, bias)
    for a, e in zip(got, want):
      np.testing.assert_allclose(a, e, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("train", [True, False])
def test_module_equals_flax_batch_norm(train):
  x = 1.0 + jax.random.normal(jax.random.key(3), (4, 6, 6, 7))
  ours = hourglass.batch_norm(train)
  ref = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
  v_ours = ours.init(jax.random.key(0), x)
  v_ref = ref.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_ref)
  v = {"params": {"scale": jnp.linspace(0.5, 2, 7), "bias": jnp.linspace(-1, 1, 7)},
       "batch_stats": {"mean": jnp.linspace(0, 1, 7), "var": jnp.linspace(1, 3, 7)}}
  y_ours, s_ours = ours.apply(v, x, mutable=["batch_stats"])
  y_ref, s_ref = ref.apply(v, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
  for a, e in zip(jax.tree.leaves(s_ours), jax.tree.leaves(s_ref)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis_type", ["Auto", "Explicit"])
def test_batchnorm_statistics_over_global_sharded_batch(axis_type):
  """A BatchNorm'd block on a batch sharded over 8 devices gives the 1-device statistics
  (Auto: the training loop's mesh; Explicit: jax.make_mesh's default)."""
  assert jax.device_count() == 8, "tests/conftest.py forces 8 CPU devices"
  block = hourglass.DownBlock2d(6)
  x = jax.random.normal(jax.random.key(3), (8, 8, 8, 3)) * 2.0 + 0.5
  variables = block.init(jax.random.key(4), x[:1])

  def step(v, x):
    return block.apply(v, x, True, mutable=["batch_stats"])

  y1, s1 = jax.jit(step)(variables, jax.device_put(x, jax.devices()[0]))
  mesh = jax.make_mesh((8,), ("data",),
                       axis_types=(getattr(jax.sharding.AxisType, axis_type),))
  sharded = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.P("data")))
  assert len(sharded.addressable_shards) == 8
  y8, s8 = jax.jit(step)(variables, sharded)
  np.testing.assert_allclose(np.asarray(y8), np.asarray(y1), atol=1e-5)
  for a, b in zip(jax.tree.leaves(s8), jax.tree.leaves(s1)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  # Independent check: the running mean moved 10% toward the global batch mean of conv(x).
  conv = variables["params"]["conv"]
  pre = jax.lax.conv_general_dilated(x, conv["kernel"], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  pre = pre + conv["bias"].reshape(1, 1, 1, -1)
  np.testing.assert_allclose(np.asarray(s8["batch_stats"]["norm"]["mean"]),
                             0.1 * np.asarray(pre).mean(axis=(0, 1, 2)), atol=1e-5)


def test_grouped_batch_norm_equals_separate_calls():
  """groups=3 on interleaved rows == three calls on the three sub-batches, in order: outputs,
  running averages and gradients (the keypoint detector's batched training call)."""
  parts = [c + s * jax.random.normal(jax.random.key(i), (2, 6, 6, 5))
           for i, (c, s) in enumerate([(0.0, 1.0), (2.0, 0.5), (-1.0, 3.0)])]
  stacked = jnp.stack(parts, axis=1).reshape((6, 6, 6, 5))
  v = {"params": {"scale": jnp.linspace(0.5, 2, 5), "bias": jnp.linspace(-1, 1, 5)},
       "batch_stats": {"mean": jnp.linspace(0, 1, 5), "var": jnp.linspace(1, 3, 5)}}
  w = jax.random.normal(jax.random.key(7), (2, 3, 6, 6, 5))

  def grouped(params, x):
    y, s = hourglass.batch_norm(True, groups=3).apply(dict(v, params=params), x,
                                                      mutable=["batch_stats"])
    return jnp.sum(w * jnp.tanh(y.reshape(2, 3, 6, 6, 5))), (y, s)

  def separate(params, xs):
    stats, ys = v["batch_stats"], []
    for x in xs:
      y, s = hourglass.batch_norm(True).apply({"params": params, "batch_stats": stats}, x,
                                              mutable=["batch_stats"])
      stats = s["batch_stats"]
      ys.append(y)
    y = jnp.stack(ys, axis=1)
    return jnp.sum(w * jnp.tanh(y)), (y.reshape(6, 6, 6, 5), {"batch_stats": stats})

  (l_g, (y_g, s_g)), g_g = jax.value_and_grad(grouped, (0, 1), has_aux=True)(v["params"], stacked)
  (l_s, (y_s, s_s)), g_s = jax.value_and_grad(separate, (0, 1), has_aux=True)(v["params"], parts)
  np.testing.assert_allclose(y_g, y_s, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(l_g, l_s, rtol=1e-5)
  for a, e in zip(jax.tree.leaves(s_g), jax.tree.leaves(s_s)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
  # The statistics differ from one pooled call's: the groups really are kept apart.
  _, pooled = hourglass.batch_norm(True).apply(v, stacked, mutable=["batch_stats"])
  assert not np.allclose(pooled["batch_stats"]["var"], s_g["batch_stats"]["var"], atol=1e-3)
  for a, e in zip(jax.tree.leaves(g_g[0]), jax.tree.leaves(g_s[0])):
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(g_g[1], jnp.stack(g_s[1], axis=1).reshape(6, 6, 6, 5),
                             rtol=1e-4, atol=1e-5)


def test_group_channel_sum_matches_sum():
  x = jax.random.normal(jax.random.key(0), (6, 16, 16, 4))
  want = jnp.sum(x.reshape(2, 3, 16, 16, 4), axis=(0, 2, 3))
  np.testing.assert_allclose(reductions.group_channel_sum(x, 3), want, rtol=1e-5, atol=1e-4)
  with pytest.raises(ValueError, match="multiple of 4 groups"):
    reductions.group_channel_sum(x, 4)
