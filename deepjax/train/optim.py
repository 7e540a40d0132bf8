"""Adam as optax.adam (same maths, same state pytree), with its first moment in lerp form.

`adam(learning_rate, b1, b2, eps)` is `optax.adam` whose first-moment update is written
mu + (1 - b1) * (g - mu) instead of optax's (1 - b1) * g + b1 * mu (torch.optim.Adam
uses the same lerp form since torch 2.0). Equal up to float rounding; the state is
`(ScaleByAdamState(count, mu, nu), <learning-rate state>)` exactly as optax.adam's, so
checkpoints of either load into the other.

Why: with b1 = 0.5 (the first-order motion model's and faceswap's Adam), XLA's algebraic
simplifier rewrites 0.5 * g + 0.5 * mu as (g + mu) * 0.5, finds it cheap enough to
duplicate into the parameter-update fusion, and then has to copy the old first moment
(its buffer is donated and overwritten in place): two extra passes over every moment
per step. The lerp form is not rewritten. `deepjax bench --rows=adam`
(`deepjax.bench.adam`) times both on the 64 px FOMM's parameters (60 M).
"""
import jax
import jax.numpy as jnp
import optax


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                  eps_root: float = 0.0) -> optax.GradientTransformation:
  """optax.scale_by_adam (no nesterov, moments in the parameters' dtype), lerp form."""

  def init_fn(params):
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                  mu=optax.tree.zeros_like(params),
                                  nu=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda g, m: m + (1.0 - b1) * (g - m), updates, state.mu)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = optax.safe_increment(state.count)
    mu_hat = optax.tree.bias_correction(mu, b1, count)
    nu_hat = optax.tree.bias_correction(nu, b2, count)
    out = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
    return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def adam(learning_rate, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformation:
  """Drop-in for optax.adam(learning_rate, b1, b2, eps) (a float or an optax schedule)."""
  return optax.chain(scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))
