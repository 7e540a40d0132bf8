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


def test_init_compiled_once_at_o1_makes_the_same_parameters(monkeypatch):
  """jit_once's LLVM -O1 gives an init the parameters XLA's default -O3 gives, bit for bit
  (options per jit, so the tests' process-wide -O0 does not enter); a level set in XLA_FLAGS
  (the tests' -O0) is kept."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  assert compile_options.OPT_LEVEL_OPTION not in str(compile_options.once_options())
  monkeypatch.setenv("XLA_FLAGS", "")
  once = compile_options.once_options()
  assert once == {**compile_options.cpu_options(), compile_options.OPT_LEVEL_OPTION: "1"}

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      for width in (8, 16, 32):
        x = nn.relu(nn.BatchNorm(use_running_average=False)(nn.Conv(width, (3, 3))(x)))
      return nn.Dense(10)(x.mean((1, 2)))

  x = np.zeros((2, 16, 16, 3), np.float32)
  init = lambda key: Net().init(key, x)  # noqa: E731
  default = {**compile_options.cpu_options(), compile_options.OPT_LEVEL_OPTION: "3"}
  a = jax.jit(init, compiler_options=once)(jax.random.key(3))
  b = jax.jit(init, compiler_options=default)(jax.random.key(3))
  assert len(jax.tree.leaves(a)) == 20  # 14 parameters, 6 batch statistics
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
