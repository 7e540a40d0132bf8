"""Detection metrics against brute-force definitions."""
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.eval import detection_metrics as dm


def brute_auc(s, y):
  pos, neg = s[y == 1], s[y == 0]
  diff = pos[:, None] - neg[None, :]
  return np.mean((diff > 0) + 0.5 * (diff == 0))


def brute_rates(s, y, t):
  fpr = np.mean(s[y == 0] >= t)
  fnr = np.mean(s[y == 1] < t)
  return fpr, fnr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pairwise_definition(seed):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, 300)
  s = np.round(rng.normal(size=300) + y * 0.8, 1)  # rounding makes ties
  assert dm.roc_auc(s, y) == pytest.approx(brute_auc(s, y), abs=1e-12)


def test_roc_curve_points_match_thresholds():
  rng = np.random.default_rng(3)
  y = rng.integers(0, 2, 100)
  s = np.round(rng.uniform(size=100), 2)
  fpr, tpr, thr = dm.roc_curve(s, y)
  assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
  for f, t, th in zip(fpr[1:], tpr[1:], thr[1:]):
    bf, bfn = brute_rates(s, y, th)
    assert f == pytest.approx(bf) and 1 - t == pytest.approx(bfn)
  assert np.trapezoid(tpr, fpr) == pytest.approx(dm.roc_auc(s, y))


def test_eer_matches_threshold_sweep():
  rng = np.random.default_rng(4)
  y = rng.integers(0, 2, 2000)
  s = rng.normal(size=2000) + y
  sweep = min(max(brute_rates(s, y, t)) for t in np.unique(s))
  assert dm.equal_error_rate(s, y) == pytest.approx(sweep, abs=2e-3)
  # Gaussian classes one sigma apart: EER = Phi(-0.5) = 0.3085.
  assert dm.equal_error_rate(s, y) == pytest.approx(0.3085, abs=0.03)


def test_separable_and_inverted():
  y = np.array([0, 0, 0, 1, 1])
  s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
  assert dm.roc_auc(s, y) == 1.0 and dm.equal_error_rate(s, y) == 0.0
  assert dm.accuracy(s, y) == 1.0
  assert dm.roc_auc(1 - s, y) == 0.0 and dm.equal_error_rate(1 - s, y) == 1.0
  assert dm.roc_auc(np.full(5, 0.5), y) == 0.5


def test_aggregate_and_summary():
  s = np.array([0.1, 0.3, 0.9, 0.7, 0.6, 0.2])
  y = np.array([0, 0, 1, 1, 1, 0])
  g = np.array(["a", "a", "b", "b", "c", "d"])
  ids, ms, my = dm.aggregate(s, y, g)
  assert list(ids) == ["a", "b", "c", "d"]
  np.testing.assert_allclose(ms, [0.2, 0.8, 0.6, 0.2])
  assert list(my) == [0, 1, 1, 0]
  out = dm.summary(s, y, g)
  assert out["video_auc"] == 1.0 and out["n_real"] == 3 and out["n_fake"] == 3
  assert 0.2 < out["threshold_fpr5"] < 0.3  # between the two highest real scores
  with pytest.raises(UserError):
    dm.aggregate(s, y, ["a"] * 6)


def test_threshold_at_a_false_positive_rate():
  rng = np.random.default_rng(0)
  s = np.concatenate([rng.uniform(0, 1, 1000), rng.uniform(0.5, 1, 1000)])
  y = np.repeat([0, 1], 1000)
  for fpr in (0.01, 0.05, 0.2):
    t = dm.threshold_at_fpr(s, y, fpr)
    assert abs(np.mean(s[:1000] >= t) - fpr) <= 0.002  # that share of real scores at or above
    assert abs(t - (1 - fpr)) < 0.05  # uniform real scores: the (1 - fpr) quantile
  with pytest.raises(UserError):
    dm.threshold_at_fpr([0.9], [1])


def test_bad_input():
  with pytest.raises(UserError):
    dm.roc_auc([0.1, 0.2], [1, 1])
  with pytest.raises(UserError):
    dm.roc_auc([0.1, np.nan], [0, 1])
  with pytest.raises(UserError):
    dm.accuracy([0.1], [2])
