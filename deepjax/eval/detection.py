"""Detector evaluation: a pass of a detect task's `eval_scores` over batches -> metrics."""
import jax
import numpy as np

from deepjax import loading
from deepjax.errors import UserError
from deepjax.train.state import TrainState
from deepjax.train.tasks import build_task
from deepjax.train.tasks import detect as detect_task


def evaluate(task, state, batches, eval_fn=None) -> dict:
  """Frame AUC, EER, accuracy and counts (and video-level figures when the batches carry
  clip ids) of `task.eval_scores` over `batches` pooled
  (`deepjax.train.tasks.detect.pooled_summary`, which the training loop's held-out
  evaluation uses too)."""
  return detect_task.pooled_summary(task, state, batches, eval_fn)


def evaluate_workdir(workdir: str, split: str = "test", batch_size: int = 0,
                     data: dict | None = None, eval_sbi: bool | None = None) -> dict:
  """Scores the `split` of a detect run's data (or of `data`, fields overriding the run's
  data config, e.g. other folders) with the newest checkpoint of `workdir`.

  Each real crop is scored with a self-blend of it when the run's `detect.eval_sbi` is
  on (the default, or `eval_sbi=True`), so real footage alone gives both classes;
  `eval_sbi=False` scores the crops as they are (real against generated fakes). Returns
  `detection_metrics.summary` plus "step", "split" and "task"."""
  scores, labels, videos, step = scores_workdir(workdir, split, batch_size, data, eval_sbi)
  report = detect_task.summarize(scores, labels, videos)
  return dict(report, step=step, split=split, task="detection")


def scores_workdir(workdir: str, split: str = "test", batch_size: int = 0,
                   data: dict | None = None, eval_sbi: bool | None = None):
  """The crops `evaluate_workdir` scores, one by one: (scores float (N,), labels int (N,),
  videos int64 (N,) = clip id * 2 + label, or None; the checkpoint's step)."""
  config = loading.read_config(workdir)
  if config.get("task") != "detect":
    raise UserError(f"{workdir} is a {config.get('task')!r} run, not a detector (task 'detect')")
  if data:
    if "val_identities" in config.data and "val_identities" not in data:
      data = dict(data, val_identities=())  # the run's validation people: of its own folders
    config.data.update(data)
  if eval_sbi is not None:
    config.detect.eval_sbi = bool(eval_sbi)
  saved = loading.load_state(workdir)
  task = build_task(config)
  state = TrainState.create(jax.tree.map(np.asarray, saved["params"]), {}, jax.random.key(0),
                            jax.tree.map(np.asarray, saved.get("model_state") or {}))
  batches = task.data_iterator(config, int(batch_size or config.batch_size), config.seed, split)
  scores, labels, videos = detect_task.collect_scores(task, state, batches)
  return scores, labels, videos, int(np.asarray(saved["step"]))
