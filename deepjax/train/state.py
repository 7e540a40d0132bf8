"""The training state: one pytree that every task family shares."""
from typing import Any

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  """Everything a train step reads and writes; a plain pytree (checkpointable).

  Attributes:
    step: int32 scalar, the number of finished steps.
    params: parameter pytree (a dict of sub-trees for families with several
      networks, e.g. {"gen": ..., "disc": ...}).
    opt_state: optax state pytree (a dict with one entry per optimiser).
    model_state: non-trained variables (e.g. {"batch_stats": ...}); may be {}.
    rng: uint32 (2,) raw key data; use `state.key()` for a typed key. Raw data
      keeps the checkpoint a plain array pytree.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params, opt_state, rng, model_state=None):
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
               model_state={} if model_state is None else model_state,
               rng=jax.random.key_data(rng) if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
               else rng)

  def key(self) -> jax.Array:
    """The typed root key of this run."""
    return jax.random.wrap_key_data(self.rng)

  def step_key(self) -> jax.Array:
    """A key unique to this step: fold_in(root, step)."""
    return jax.random.fold_in(self.key(), self.step)
