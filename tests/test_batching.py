"""deepjax.batching.map_batches: fixed-size batches, padded last batch, results in order."""
import numpy as np
import pytest

from deepjax.batching import map_batches


def test_fixed_batch_shape_padded_last_batch_and_order():
  rows = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
  seen, done = [], []

  def fn(batch):
    seen.append(batch.shape)
    return batch * 2, batch.sum(axis=1).astype(np.int64)

  doubled, sums = map_batches(fn, rows, 3, progress=done.append)
  assert seen == [(3, 2)] * 3  # 3 + 3 + 1 real rows, the last batch padded to 3
  assert done == [3, 3, 1]
  np.testing.assert_array_equal(doubled, rows * 2)
  np.testing.assert_array_equal(sums, rows.sum(axis=1).astype(np.int64))
  assert sums.dtype == np.int64


def test_fewer_rows_than_a_batch_and_no_rows():
  seen = []
  out = map_batches(lambda b: seen.append(len(b)) or b + 1, np.zeros((2, 4), np.uint8), 16)
  assert seen == [2] and out.shape == (2, 4) and out.dtype == np.uint8 and (out == 1).all()
  with pytest.raises(ValueError, match="at least one row"):
    map_batches(lambda b: b, np.zeros((0, 4)), 4)
