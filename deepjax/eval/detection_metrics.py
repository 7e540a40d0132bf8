"""Detection metrics (numpy): ROC AUC, ROC curve, equal-error rate, accuracy.

Scores are fake probabilities (higher = more likely fake); labels are 1 for fake and
0 for real. Frame-level metrics take one score per face crop; `aggregate` averages
scores per group (a video, or a face track) for video-level metrics.
"""
import numpy as np
from scipy import stats

from deepjax.errors import UserError


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
  s = np.asarray(scores, np.float64).reshape(-1)
  y = np.asarray(labels).reshape(-1)
  if s.shape != y.shape:
    raise UserError(f"{s.size} scores but {y.size} labels")
  if not np.all(np.isfinite(s)):
    raise UserError("detection scores contain NaN or infinity")
  if not np.all((y == 0) | (y == 1)):
    raise UserError("detection labels must be 0 (real) or 1 (fake)")
  return s, y.astype(bool)


def _need_both(y: np.ndarray, what: str) -> None:
  if y.all() or not y.any():
    raise UserError(f"{what} needs real and fake examples; got {int(y.sum())} fake of {y.size}")


def roc_auc(scores, labels) -> float:
  """Area under the ROC curve: P(score of a fake > score of a real), ties counted half
  (the Mann-Whitney U statistic over n_fake * n_real, via average ranks)."""
  s, y = _check(scores, labels)
  _need_both(y, "ROC AUC")
  ranks = stats.rankdata(s)  # average ranks for ties
  n_pos, n_neg = int(y.sum()), int((~y).sum())
  return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(false-positive rate, true-positive rate, thresholds), thresholds decreasing.

  Point i counts `score >= thresholds[i]` as fake; the first point is (0, 0) at
  threshold +inf, the last (1, 1)."""
  s, y = _check(scores, labels)
  _need_both(y, "the ROC curve")
  order = np.argsort(-s, kind="stable")
  s, y = s[order], y[order]
  last_of_run = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # ties form one point
  tps = np.cumsum(y)[last_of_run]
  fps = np.cumsum(~y)[last_of_run]
  fpr = np.r_[0.0, fps / (~y).sum()]
  tpr = np.r_[0.0, tps / y.sum()]
  return fpr, tpr, np.r_[np.inf, s[last_of_run]]


def equal_error_rate(scores, labels) -> float:
  """The rate where false positives equal false negatives (FPR = 1 - TPR), linearly
  interpolated between the two ROC points that bracket the crossing."""
  fpr, tpr, _ = roc_curve(scores, labels)
  fnr = 1.0 - tpr
  diff = fnr - fpr  # decreasing from 1 to -1 along the curve
  i = int(np.nonzero(diff <= 0)[0][0])
  if i == 0 or diff[i] == 0:
    return float(fpr[i])
  t = diff[i - 1] / (diff[i - 1] - diff[i])
  return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def accuracy(scores, labels, threshold: float = 0.5) -> float:
  """Fraction of examples with (score >= threshold) == label."""
  s, y = _check(scores, labels)
  if s.size == 0:
    raise UserError("accuracy of no examples")
  return float(np.mean((s >= threshold) == y))


def aggregate(scores, labels, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Mean score per group (e.g. per video): (group ids, mean scores, labels).

  Every example of a group must carry the same label."""
  s, y = _check(scores, labels)
  g = np.asarray(groups).reshape(-1)
  if g.shape != s.shape:
    raise UserError(f"{s.size} scores but {g.size} group ids")
  ids, inverse = np.unique(g, return_inverse=True)
  sums = np.bincount(inverse, weights=s, minlength=ids.size)
  counts = np.bincount(inverse, minlength=ids.size)
  fake = np.bincount(inverse, weights=y.astype(np.float64), minlength=ids.size)
  if np.any((fake != 0) & (fake != counts)):
    raise UserError("a group mixes real and fake examples")
  return ids, sums / counts, (fake > 0).astype(np.int64)


def threshold_at_fpr(scores, labels, fpr: float = 0.05) -> float:
  """The score above which a share `fpr` of the real examples (label 0) lies: a threshold
  that calls that share of them fake (the (1 - fpr) quantile of the real scores)."""
  s, y = _check(scores, labels)
  if not np.any(~y):
    raise UserError("a threshold on real examples needs at least one")
  return float(np.quantile(s[~y], 1.0 - fpr))


def summary(scores, labels, groups=None, threshold: float = 0.5) -> dict:
  """{"auc", "eer", "accuracy", "threshold_fpr5" (`threshold_at_fpr` at 5 %), "n_real",
  "n_fake"} (frame level) and, with `groups`, "video_auc", "video_eer", "video_accuracy" on
  per-group mean scores."""
  s, y = _check(scores, labels)
  out = {"auc": roc_auc(s, y), "eer": equal_error_rate(s, y),
         "accuracy": accuracy(s, y, threshold), "threshold_fpr5": threshold_at_fpr(s, y),
         "n_real": int((~y).sum()), "n_fake": int(y.sum())}
  if groups is not None:
    _, gs, gy = aggregate(s, y, groups)
    out.update(video_auc=roc_auc(gs, gy), video_eer=equal_error_rate(gs, gy),
               video_accuracy=accuracy(gs, gy, threshold))
  return out
