"""Running a jitted function over many rows in fixed-size batches (one compilation).

`map_batches(fn, rows, batch_size)` calls `fn` on batches of `batch_size` rows (fewer
rows than that: one batch of all of them); the last batch is padded with copies of its
last row, so `fn` sees one shape, and the padded rows' results are dropped. Used by
inference and evaluation (deepjax.infer.swap, deepjax.infer.animate,
deepjax.eval.reconstruction).
"""
from typing import Callable, Optional

import jax
import numpy as np


def map_batches(fn: Callable, rows: np.ndarray, batch_size: int,
                progress: Optional[Callable[[int], None]] = None):
  """fn over `rows` (N, ...) in fixed-size batches -> its outputs for all N rows.

  Args:
    fn: batch (B, ...) -> an array or pytree of arrays, each with leading axis B.
    rows: array (N, ...), N >= 1 (host memory; each batch is sliced from it).
    batch_size: B (at most N is used).
    progress: called with the number of real rows after each batch.
  Returns:
    `fn`'s output structure of numpy arrays with leading axis N.
  Raises:
    ValueError: no rows.
  """
  t = len(rows)
  if t == 0:
    raise ValueError("map_batches needs at least one row")
  b = max(1, min(int(batch_size), t))
  out = None
  for start in range(0, t, b):
    batch = rows[start:start + b]
    n = len(batch)
    if n < b:
      batch = np.concatenate([batch, np.repeat(batch[-1:], b - n, axis=0)])
    result = jax.tree.map(lambda y, n=n: np.asarray(y)[:n], fn(batch))
    if out is None:
      out = jax.tree.map(lambda y: np.empty((t,) + y.shape[1:], y.dtype), result)
    for dst, y in zip(jax.tree.leaves(out), jax.tree.leaves(result)):
      dst[start:start + n] = y
    if progress is not None:
      progress(n)
  return out
