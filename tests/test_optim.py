"""deepjax.train.optim.adam against optax.adam: same updates, same state pytree."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepjax.train import optim


@pytest.mark.parametrize("b1", [0.5, 0.9])
def test_adam_equals_optax_adam(b1):
  params = {"w": jax.random.normal(jax.random.key(0), (4, 5)), "b": jnp.zeros((5,))}
  schedule = optax.piecewise_constant_schedule(1e-2, {3: 0.1})
  ours, ref = optim.adam(schedule, b1=b1, b2=0.99), optax.adam(schedule, b1=b1, b2=0.99)
  s_ours, s_ref = ours.init(params), ref.init(params)
  assert jax.tree.structure(s_ours) == jax.tree.structure(s_ref)
  p_ours = p_ref = params
  for i in range(6):
    g = jax.tree.map(lambda x, i=i: jnp.sin((i + 1.0) * x) + 0.1 * i, params)
    u, s_ours = jax.jit(ours.update)(g, s_ours, p_ours)
    p_ours = optax.apply_updates(p_ours, u)
    u, s_ref = jax.jit(ref.update)(g, s_ref, p_ref)
    p_ref = optax.apply_updates(p_ref, u)
  for a, e in zip(jax.tree.leaves((p_ours, s_ours)), jax.tree.leaves((p_ref, s_ref))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-7)
  # The parameters moved (the comparison is not between two no-ops).
  assert float(jnp.abs(p_ours["w"] - params["w"]).max()) > 1e-3


def test_state_loads_into_optax_adam():
  """A state made by optax.adam (e.g. an older checkpoint) drives ours, and vice versa."""
  params = {"w": jnp.ones((3,))}
  g = {"w": jnp.asarray([0.1, -0.2, 0.3])}
  ref_state = optax.adam(1e-3, b1=0.5).init(params)
  _, ref_state = optax.adam(1e-3, b1=0.5).update(g, ref_state, params)
  u_ours, _ = optim.adam(1e-3, b1=0.5).update(g, ref_state, params)
  u_ref, _ = optax.adam(1e-3, b1=0.5).update(g, ref_state, params)
  np.testing.assert_allclose(u_ours["w"], u_ref["w"], rtol=1e-6)


def test_swap_learning_rate_schedules():
  import ml_collections  # pylint: disable=import-outside-toplevel
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks.ae import learning_rate  # pylint: disable=import-outside-toplevel
  cfg = ml_collections.ConfigDict(dict(learning_rate=1e-3, schedule="constant"))
  assert learning_rate(cfg, 100) == 1e-3
  cfg.update(schedule="cosine", warmup_steps=10, end_factor=0.1)
  lr = learning_rate(cfg, 100)
  np.testing.assert_allclose([float(lr(s)) for s in (0, 5, 10, 100)],
                             [0.0, 5e-4, 1e-3, 1e-4], rtol=1e-5, atol=1e-9)
  assert float(lr(55)) < 1e-3
  cfg.schedule = "linear"
  with pytest.raises(UserError, match="constant' or 'cosine"):
    learning_rate(cfg, 100)
