"""deepjax.compile_options: per-jit CPU options change speed, not results."""
import jax
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options


def test_cpu_options_named_and_switchable(monkeypatch):
  assert jax.default_backend() == "cpu"
  assert compile_options.cpu_conv_options() == {
      compile_options.YNN_OPTION: compile_options.YNN_DOTS_ONLY}
  assert compile_options.cpu_options() == {
      compile_options.YNN_OPTION: compile_options.YNN_DOTS_ONLY,
      compile_options.VECTOR_WIDTH_OPTION: "512"}
  monkeypatch.setenv("DEEPJAX_CPU_CONV", "ynn")
  assert compile_options.cpu_conv_options() is None
  assert compile_options.cpu_options() == {compile_options.VECTOR_WIDTH_OPTION: "512"}
  monkeypatch.setenv("DEEPJAX_CPU_VECTOR_WIDTH", "256")
  assert compile_options.cpu_options() is None


def test_unknown_option_is_refused_by_the_probe():
  assert not compile_options._probe("xla_cpu_no_such_option_deepjax", "1")  # pylint: disable=protected-access


def test_conv_gradients_equal_with_and_without_options():
  dn = ("NHWC", "HWIO", "NHWC")
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 16))
  w = jax.random.normal(jax.random.key(1), (3, 3, 16, 24)) * 0.1

  def loss(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
    return jnp.sum(jnp.tanh(y) ** 2)

  grad = jax.grad(loss, argnums=(0, 1))
  fast = compile_options.jit(grad)(x, w)
  plain = jax.jit(grad)(x, w)
  assert "ynn_fusion_type" in str(compile_options.cpu_options())
  assert "vector_width" in str(compile_options.cpu_options())
  for a, b in zip(fast, plain):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-4)
