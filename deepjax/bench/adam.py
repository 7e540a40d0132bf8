"""Adam row: `deepjax.train.optim.adam` (the lerp form every task trains with) against
optax.adam.

`adam_row(config)` times one donated update of all keypoint-detector and generator
parameters of a FOMM config (60 M at 64 px), each optimiser compiled as the tasks
compile their step (`compile_options.jit`, parameters and optimiser state donated).
"""
import jax
import jax.numpy as jnp
import optax

from deepjax import compile_options
from deepjax.bench.timing import Result, load_spec, time_calls
from deepjax.train import optim


def time_update(tx: optax.GradientTransformation, params, grads, repeats: int = 5):
  """Best seconds of one donated `tx` update + apply of `params` with `grads`."""
  def update(p, s, g):
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s
  step = compile_options.jit(update, donate_argnums=(0, 1))
  return time_calls(step, jax.tree.map(jnp.copy, params), tx.init(params), grads,
                    repeats=repeats, warmup=1, carry=2).best


def adam_row(config: str = "fomm_vox256:res=64", b1: float = 0.5, repeats: int = 5) -> Result:
  """Seconds per update, optax.adam vs deepjax's adam (best of `repeats`); step_s is
  deepjax's."""
  from deepjax.models.motion.fomm import FOMM  # pylint: disable=import-outside-toplevel
  cfg = load_spec(config)
  size = int(cfg.data.size)
  shapes = FOMM.from_config(cfg.model).init_shapes((1, size, size, 3))
  params = {k: jax.tree.map(lambda s: jnp.full(s.shape, 0.01, s.dtype), shapes[k]["params"])
            for k in ("kp_detector", "generator")}
  grads = jax.tree.map(lambda p: p * 0.5 + 0.001, params)
  params_m = sum(x.size for x in jax.tree.leaves(params)) / 1e6
  ours = time_update(optim.adam(1e-4, b1=b1), params, grads, repeats)
  theirs = time_update(optax.adam(1e-4, b1=b1), params, grads, repeats)
  return Result(step_s=ours,
                note=f"Adam over {params_m:.0f} M params: optax {theirs:.3f} s, "
                     f"lerp form {ours:.3f} s",
                extra={"config": config, "b1": b1, "params_m": params_m,
                       "optax_adam_s": theirs, "deepjax_adam_s": ours})
