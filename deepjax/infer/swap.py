"""Swap faces with a trained model: batched, jitted, independent of the training code.

`Swapper(workdir)` loads a checkpoint with `deepjax.load`; `swapper(faces,
"a2b")` maps float (N,S,S,3) aligned face crops of A to B (or B to A). For
families with a learned mask (GAN), the output is mask*rgb + (1-mask)*input and
the mask is returned too.
"""
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax.batching import map_batches
from deepjax.errors import UserError
from deepjax.loading import load

DIRECTIONS = {"a2b": "b", "b2a": "a"}


class Swapper:
  """Loaded swap model; call with float (N,S,S,3) faces in [0,1]."""

  def __init__(self, workdir: str, batch_size: int = 32):
    self.model, self.params, self.config = load(workdir)
    if self.config.task not in ("ae", "vae", "gan"):
      raise UserError(f"{workdir} holds a {self.config.task!r} model, not a face-swap model")
    self.size = int(self.config.data.size)
    self.batch_size = batch_size
    self._fns = {}

  def _fn(self, identity):
    if identity not in self._fns:
      def f(params, x):
        rgb, mask, _ = self.model.apply({"params": params}, x, identity)
        if mask is None:
          return rgb, jnp.ones(x.shape[:-1] + (1,), x.dtype)
        return mask * rgb + (1 - mask) * x, mask
      self._fns[identity] = compile_options.jit(f)
    return self._fns[identity]

  def __call__(self, faces_NxSxSx3: np.ndarray, direction: str = "a2b"):
    """-> (swapped float32 (N,S,S,3), mask float32 (N,S,S,1))."""
    if direction not in DIRECTIONS:
      raise UserError(f"swap direction must be a2b or b2a, not {direction!r}")
    faces = np.asarray(faces_NxSxSx3, np.float32)
    if faces.ndim != 4 or faces.shape[1:] != (self.size, self.size, 3):
      raise UserError(f"faces must be (N,{self.size},{self.size},3), got {faces.shape}")
    fn = self._fn(DIRECTIONS[direction])
    return map_batches(lambda chunk: fn(self.params, jnp.asarray(chunk)), faces, self.batch_size)
