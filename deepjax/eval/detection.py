"""Detector evaluation: a pass of a detect task's `eval_scores` over batches -> metrics."""
import jax
import numpy as np

from deepjax import loading
from deepjax.errors import UserError
from deepjax.eval import detection_metrics
from deepjax.train.state import TrainState
from deepjax.train.tasks import build_task


def collect_scores(task, state, batches, eval_fn=None):
  """(scores float (N,), labels int (N,), videos int64 (N,) or None) of the valid examples
  of every batch. A video is a source clip and a label (a clip's real crops and its
  self-blends are two videos); None when the batches carry no "clip_id".

  `eval_fn`: a compiled `task.eval_scores` (default: `jax.jit(task.eval_scores)`)."""
  eval_fn = eval_fn or jax.jit(task.eval_scores)
  scores, labels, videos = [], [], []
  for batch in batches:
    out = jax.device_get(eval_fn(state, batch))
    keep = np.asarray(out["valid"], bool)
    scores.append(np.asarray(out["score"])[keep])
    labels.append(np.asarray(out["label"])[keep])
    if "clip_id" in out:
      videos.append(np.asarray(out["clip_id"], np.int64)[keep] * 2 + labels[-1])
  labels = np.concatenate(labels)
  videos = np.concatenate(videos) if len(videos) == len(scores) else None
  return np.concatenate(scores), labels, videos


def evaluate(task, state, batches, eval_fn=None) -> dict:
  """`detection_metrics.summary` (frame AUC, EER, accuracy, counts; video-level figures
  when the batches carry clip ids and both classes have a video) over `batches`."""
  scores, labels, videos = collect_scores(task, state, batches, eval_fn)
  out = detection_metrics.summary(scores, labels)
  if videos is not None:
    _, vs, vy = detection_metrics.aggregate(scores, labels, videos)
    out.update(n_videos=int(vs.size))
    if 0 < vy.sum() < vy.size:
      out.update(video_auc=detection_metrics.roc_auc(vs, vy),
                 video_eer=detection_metrics.equal_error_rate(vs, vy),
                 video_accuracy=detection_metrics.accuracy(vs, vy))
  return out


def evaluate_workdir(workdir: str, split: str = "test", batch_size: int = 0,
                     data: dict | None = None, eval_sbi: bool | None = None) -> dict:
  """Scores the `split` of a detect run's data (or of `data`, fields overriding the run's
  data config, e.g. other folders) with the newest checkpoint of `workdir`.

  Each real crop is scored with a self-blend of it when the run's `detect.eval_sbi` is
  on (the default, or `eval_sbi=True`), so real footage alone gives both classes;
  `eval_sbi=False` scores the crops as they are (real against generated fakes). Returns
  `detection_metrics.summary` plus "step", "split" and "task"."""
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
  report = evaluate(task, state, batches)
  return dict(report, step=int(np.asarray(saved["step"])), split=split, task="detection")
