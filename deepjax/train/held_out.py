"""The loop's held-out evaluation and the checkpoint kept for the best held-out figure.

`HeldOut` reads the first `config.eval_batches` batches of the split `config.eval_split`
("test" by default; "validation" for training people held out to choose a checkpoint) once
and scores them at every evaluation, so the figures are comparable across steps.
`BestCheckpoint` saves the state where `config.keep_best` (a figure of that evaluation, e.g.
"auc") was best so far in `<workdir>/best/<step>/` — the layout of `checkpoints/`, so every
program that takes a run folder takes `<workdir>/best` — with `best.json` (step, figure,
value, split), which a resumed run reads to keep comparing with it.
"""
import json
import math
import os

import jax
import numpy as np

from deepjax import compile_options
from deepjax.errors import UserError
from deepjax.io_utils import write_text_atomic
from deepjax.train import checkpoint as ckpt
from deepjax.train import metrics as mlib
from deepjax.train import parallel


class HeldOut:
  """Held-out batches for `task`'s evaluation and the preview.

  A data set without the split turns evaluation off (logged once). A task with
  `eval_summary(state, batches, eval_fn)` (figures over all batches pooled, e.g. a ROC
  AUC) is evaluated by it, `eval_fn` being its compiled `eval_scores`; other tasks by the
  mean of `eval_step` over the batches.
  """

  def __init__(self, task, config, mesh, state_sharding):
    self._task, self._config, self._mesh = task, config, mesh
    self._state_sharding = state_sharding
    self._batches = None
    self._eval_fn = None
    self.split = str(config.get("eval_split", "test"))

  def batches(self) -> list:
    if self._batches is None:
      n = max(int(self._config.get("eval_batches", 1)), 1)
      host_bs = parallel.host_batch_size(self._config.batch_size, self._mesh)
      self._batches = []
      try:
        it = self._task.data_iterator(self._config, host_bs, self._config.seed, self.split)
        for _ in range(n):
          self._batches.append(parallel.to_global(next(it), self._mesh))
      except StopIteration:
        if not self._batches:
          mlib.log(f"no held-out evaluation: the data's {self.split} split holds less than "
                   f"one batch of {host_bs} per process")
      except (UserError, ValueError, KeyError) as e:
        mlib.log(f"no held-out evaluation: the data has no usable {self.split} split ({e})")
    return self._batches

  def evaluate(self, state) -> dict:
    """The task's held-out figures ({} without the split)."""
    batches = self.batches()
    if not batches:
      return {}
    pooled = getattr(self._task, "eval_summary", None)
    if self._eval_fn is None:
      repl = parallel.replicated(self._mesh)
      self._eval_fn = compile_options.jit(
          self._task.eval_scores if pooled else self._task.eval_step,
          in_shardings=(self._state_sharding, parallel.batch_sharding(self._mesh)),
          out_shardings=repl)
    if pooled:
      return {k: float(v) for k, v in pooled(state, batches, self._eval_fn).items()}
    values = [jax.device_get(self._eval_fn(state, b)) for b in batches]
    return {k: float(np.mean([v[k] for v in values])) for k in values[0]}


class BestCheckpoint:
  """Keeps the checkpoint with the best `config.keep_best` ("" = off); `config.best_mode`
  "max" (default) or "min"."""

  def __init__(self, config, workdir: str):
    self._config = config
    self.metric = str(config.get("keep_best", "") or "")
    self.sign = -1.0 if str(config.get("best_mode", "max")) == "min" else 1.0
    self.path = os.path.join(workdir, "best")
    self.value = -math.inf
    self._manager = None
    record = os.path.join(self.path, "best.json")
    if self.metric and os.path.exists(record):
      with open(record, encoding="utf-8") as f:
        self.value = self.sign * float(json.load(f)["value"])

  def update(self, step: int, state, evaluated: dict, data_iterator) -> None:
    """Saves `state` (and the data position) when `evaluated` beats the best so far."""
    value = evaluated.get(self.metric) if self.metric else None
    if value is None or not math.isfinite(value) or self.sign * value <= self.value:
      return
    if self._manager is None:
      self._manager = ckpt.make_manager(self.path, 1, subdir="")
    data_states = ckpt.gather_data_states({str(jax.process_index()): data_iterator.get_state()})
    ckpt.save(self._manager, step, state, data_states, self._config)
    self.value = self.sign * value
    if jax.process_index() == 0:
      write_text_atomic(os.path.join(self.path, "best.json"), json.dumps(
          {"step": step, "metric": self.metric, "value": value,
           "split": str(self._config.get("eval_split", "test"))}))
    mlib.log(f"best {self.metric} so far ({value:.4g}) at step {step}: saved in {self.path}")

  def close(self) -> None:
    if self._manager is not None:
      self._manager.close()
