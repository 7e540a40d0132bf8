"""Detector evaluation: a pass of a detect task's `eval_scores` over batches -> metrics."""
import jax
import numpy as np

from deepjax.eval import detection_metrics


def collect_scores(task, state, batches, eval_fn=None) -> tuple[np.ndarray, np.ndarray]:
  """(scores float (N,), labels int (N,)) of the valid examples of every batch.

  `eval_fn`: a compiled `task.eval_scores` (default: `jax.jit(task.eval_scores)`)."""
  eval_fn = eval_fn or jax.jit(task.eval_scores)
  scores, labels = [], []
  for batch in batches:
    out = jax.device_get(eval_fn(state, batch))
    keep = np.asarray(out["valid"], bool)
    scores.append(np.asarray(out["score"])[keep])
    labels.append(np.asarray(out["label"])[keep])
  return np.concatenate(scores), np.concatenate(labels)


def evaluate(task, state, batches, eval_fn=None) -> dict:
  """`detection_metrics.summary` (AUC, EER, accuracy, counts) over `batches`."""
  return detection_metrics.summary(*collect_scores(task, state, batches, eval_fn))
