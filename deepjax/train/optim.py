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
per step. The lerp form is not rewritten. `python -m deepjax.train.optim` (row `adam` of
`deepjax bench`) times both on the 64 px FOMM's parameters (60 M).
"""
import argparse
import time

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


def bench(config_arg: str = "fomm_vox256:res=64", b1: float = 0.5, repeats: int = 5) -> dict:
  """Seconds per donated update of all keypoint-detector and generator parameters of
  `config_arg`, optax.adam vs this module's adam (best of `repeats`)."""
  from deepjax.models.motion.fomm import FOMM  # pylint: disable=import-outside-toplevel
  from deepjax.bench.fomm_animate import load_config  # pylint: disable=import-outside-toplevel
  config = load_config(config_arg)
  shapes = FOMM.from_config(config.model).init_shapes((1, int(config.data.size),
                                                       int(config.data.size), 3))
  params = {k: jax.tree.map(lambda s: jnp.full(s.shape, 0.01, s.dtype), shapes[k]["params"])
            for k in ("kp_detector", "generator")}
  grads = jax.tree.map(lambda p: p * 0.5 + 0.001, params)
  out = {"row": "adam", "config": config_arg, "b1": b1,
         "params_m": sum(x.size for x in jax.tree.leaves(params)) / 1e6}
  for name, tx in (("optax_adam_s", optax.adam(1e-4, b1=b1)), ("deepjax_adam_s", adam(1e-4, b1=b1))):
    def step(p, s, g, tx=tx):
      updates, s = tx.update(g, s, p)
      return optax.apply_updates(p, updates), s
    jitted = jax.jit(step, donate_argnums=(0, 1))
    state = jitted(jax.tree.map(jnp.copy, params), tx.init(params), grads)
    best = float("inf")
    for _ in range(repeats):
      jax.block_until_ready(state)
      t = time.perf_counter()
      state = jitted(*state, grads)
      jax.block_until_ready(state)
      best = min(best, time.perf_counter() - t)
    out[name] = best
  out["note"] = (f"Adam over {out['params_m']:.0f} M params: optax {out['optax_adam_s']:.3f} s, "
                 f"lerp form {out['deepjax_adam_s']:.3f} s")
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="fomm_vox256:res=64")
  parser.add_argument("--b1", type=float, default=0.5)
  args = parser.parse_args()
  from deepjax.bench.timing import print_row  # pylint: disable=import-outside-toplevel
  print_row(bench, args.config, args.b1)


if __name__ == "__main__":
  main()
