"""Detector evaluation: a pass of a detect task's `eval_scores` over batches -> metrics, for
one detector or an ensemble of them (the mean of the members' fake probabilities)."""
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


def evaluate_workdir(workdir, split: str = "test", batch_size: int = 0,
                     data: dict | None = None, eval_sbi: bool | None = None) -> dict:
  """Scores the `split` of a detect run's data (or of `data`, fields overriding the run's
  data config, e.g. other folders) with the newest checkpoint of `workdir`, or with the
  mean fake probability of an ensemble of detectors (`deepjax.loading.ensemble_members`;
  the first member's data config then holds for all).

  Each real crop is scored with a self-blend of it when the run's `detect.eval_sbi` is
  on (the default, or `eval_sbi=True`), so real footage alone gives both classes;
  `eval_sbi=False` scores the crops as they are (real against generated fakes). Returns
  `detection_metrics.summary` plus "step" (a list of steps for an ensemble, with
  "members"), "split" and "task"."""
  names = loading.ensemble_members(workdir)
  scores, labels, videos, step = scores_workdir(names, split, batch_size, data, eval_sbi)
  report = detect_task.summarize(scores, labels, videos)
  if len(names) > 1:
    report["members"] = names
  return dict(report, step=step, split=split, task="detection")


def _detector_config(workdir: str):
  config = loading.read_config(workdir)
  if config.get("task") != "detect":
    raise UserError(f"{workdir} is a {config.get('task')!r} run, not a detector (task 'detect')")
  return config


def scores_workdir(workdir, split: str = "test", batch_size: int = 0,
                   data: dict | None = None, eval_sbi: bool | None = None):
  """The crops `evaluate_workdir` scores, one by one: (scores float (N,), labels int (N,),
  videos int64 (N,) = clip id * 2 + label, or None; the checkpoint's step). For an
  ensemble the scores are the members' mean fake probability and the step a list."""
  names = loading.ensemble_members(workdir)
  config = _detector_config(names[0])
  if data:
    if "val_identities" in config.data and "val_identities" not in data:
      data = dict(data, val_identities=())  # the run's validation people: of its own folders
    config.data.update(data)
  if eval_sbi is not None:
    config.detect.eval_sbi = bool(eval_sbi)
  runs, steps = [], []
  for name in names:
    own = config if name == names[0] else _detector_config(name)
    if int(own.data.size) != int(config.data.size):
      raise UserError(f"ensemble members differ in crop size: {names[0]} takes "
                      f"{config.data.size} px, {name} {own.data.size} px")
    member_config = config.copy_and_resolve_references()
    member_config.model = own.model  # the member's network; data and scoring of the first
    saved = loading.load_state(name)
    task = build_task(member_config)
    state = TrainState.create(jax.tree.map(np.asarray, saved["params"]), {}, jax.random.key(0),
                              jax.tree.map(np.asarray, saved.get("model_state") or {}))
    batches = task.data_iterator(member_config, int(batch_size or config.batch_size),
                                 config.seed, split)
    runs.append(detect_task.collect_scores(task, state, batches))
    steps.append(int(np.asarray(saved["step"])))
  scores, labels, videos = runs[0]
  for _, other_labels, other_videos in runs[1:]:
    if not np.array_equal(other_labels, labels) or (
        videos is not None and not np.array_equal(other_videos, videos)):
      raise UserError("ensemble members scored different crops (their data differ)")
  if len(runs) > 1:
    scores = np.mean([r[0] for r in runs], axis=0)
  return scores, labels, videos, steps[0] if len(steps) == 1 else steps
