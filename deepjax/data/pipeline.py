"""grain input pipelines: TFDS ArrayRecord sources -> host-local uint8 batches.

`swap_iterator` feeds the face-swap families (AE, VAE, GAN): two identities A and B,
each from its own dataset, shuffled and sharded independently and zipped batch by
batch. Batches are host-local (`batch_size` is the per-process batch; see
`host_batch_size`); the training core turns them into global arrays with
`jax.make_array_from_process_local_data`.

Data config fields read (an `ml_collections.ConfigDict` or a plain dict):
  source: "synthetic" | "folders".
  size: image side in pixels (int).
  synthetic: identity_a, identity_b (identity seeds), num_train, num_test (frames
    per identity and split).
  folders: a, b (folder paths), test_fraction (optional, default 0.1).
  data_dir: where TFDS writes prepared data (optional; default
    `~/.cache/deepjax/datasets`).
  worker_count: grain worker processes (optional, default 0 = decode in-process).
  shuffle: shuffle training data (optional, default True).
  read_threads: in-process decode threads (optional, default 4).

Pipeline per side: `MapDataset.source` -> `[shard_index::shard_count]` (per host,
disjoint) -> `.shuffle(seed)` -> `.repeat()` (train; each epoch reshuffled) ->
record selection -> `.batch(drop_remainder=True)` -> `to_iter_dataset()`
(-> `mp_prefetch` when worker_count > 0).
"""
import math
from typing import Any, Callable, Iterator, Optional

import grain
import jax
import numpy as np
from absl import logging

from deepjax.data.builders import face_folders
from deepjax.data.builders import synthetic_faces
from deepjax.errors import UserError

STATE_VERSION = 1
_SIDES = ("a", "b")


def config_get(cfg, name: str, default: Any = ...):
  """`cfg.name` from a ConfigDict or dict; UserError when required and missing."""
  try:
    value = cfg[name]
  except (KeyError, AttributeError):
    value = None
  if value is None:
    if default is ...:
      raise UserError(f"data config is missing '{name}'")
    return default
  return value


def host_batch_size(global_batch: int, process_count: Optional[int] = None) -> int:
  """Per-process batch size: `global_batch // process_count` (must divide exactly)."""
  count = jax.process_count() if process_count is None else process_count
  if global_batch <= 0 or global_batch % count:
    raise UserError(f"global batch size {global_batch} is not a positive multiple of the "
                    f"{count} processes")
  return global_batch // count


def shard_of(shard_by_process: bool, shard_index, shard_count) -> tuple[int, int]:
  if shard_index is not None or shard_count is not None:
    if shard_index is None or shard_count is None or not 0 <= shard_index < shard_count:
      raise ValueError(f"bad shard {shard_index} of {shard_count}")
    return int(shard_index), int(shard_count)
  if shard_by_process:
    return jax.process_index(), jax.process_count()
  return 0, 1


def prepare_once(fn: Callable[[], Any], multihost: bool):
  """Runs `fn` on process 0 first, then on the others (no race on a shared data_dir).

  Process 0 reaches the barrier even when `fn` fails (then re-raises), so the other
  processes never wait forever; they run `fn` themselves afterwards (on a shared
  data_dir it finds the data prepared, on a local one it prepares its own copy).
  """
  if not multihost or jax.process_count() == 1:
    return fn()
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  out, error = None, None
  if jax.process_index() == 0:
    try:
      out = fn()
    except Exception as e:  # pylint: disable=broad-except
      error = e
  multihost_utils.sync_global_devices("deepjax.data.prepare")
  if error is not None:
    raise error
  return out if jax.process_index() == 0 else fn()


def identity_builders(data_config, multihost: bool = True) -> dict[str, Any]:
  """Prepares (if needed) and returns the TFDS builders of identities A and B."""
  source = config_get(data_config, "source")
  size = int(config_get(data_config, "size"))
  data_dir = config_get(data_config, "data_dir", None)
  if source == "synthetic":
    num_train = int(config_get(data_config, "num_train"))
    num_test = int(config_get(data_config, "num_test", 0))

    def make(side):
      seed = int(config_get(data_config, f"identity_{side}"))
      return lambda: synthetic_faces.prepare_synthetic(seed, num_train, size, data_dir,
                                                       num_test=num_test)
  elif source == "folders":
    test_fraction = float(config_get(data_config, "test_fraction", 0.1))

    def make(side):
      folder = config_get(data_config, side)
      if not str(folder).strip():
        raise UserError(f"data.{side} is empty: set the face folder of identity "
                        f"{side.upper()}")
      return lambda: face_folders.prepare_face_folder(folder, size, data_dir, test_fraction)
  else:
    raise UserError(f"data source must be 'synthetic' or 'folders', got '{source}'")
  return {side: prepare_once(make(side), multihost) for side in _SIDES}


def _source(builder, split: str, side: str):
  if split not in builder.info.splits:
    raise UserError(f"identity {side.upper()} has no '{split}' split (has "
                    f"{sorted(builder.info.splits)}); for folders set test_fraction > 0")
  return builder.as_data_source(split)


def _select(record: dict) -> dict:
  """The fields the swap models use, with fixed dtypes."""
  return {
      "image": np.asarray(record["image"], np.uint8),
      "landmarks": np.asarray(record["landmarks"], np.float32),
      "has_landmarks": np.asarray(record["has_landmarks"], np.bool_),
  }


def side_dataset(source, batch_size: int, seed: int, *, shuffle: bool, repeat: bool,
                 shard_index: int = 0, shard_count: int = 1) -> grain.MapDataset:
  """One identity's batched MapDataset (see module docstring for the order)."""
  n = len(source)
  if n < shard_count:
    raise UserError(f"dataset of {n} examples cannot be split over {shard_count} processes")
  ds = grain.MapDataset.source(source)
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  if shuffle:
    ds = ds.shuffle(seed=seed)
  if repeat:
    ds = ds.repeat()
  return ds.map(_select).batch(batch_size, drop_remainder=True)


def _side_seed(seed: int, side: str) -> int:
  ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _SIDES.index(side), 0xDA7A])
  return int(ss.generate_state(1)[0])


def to_iter(ds: grain.MapDataset, data_config) -> grain.IterDataset:
  threads = int(config_get(data_config, "read_threads", 4))
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                             prefetch_buffer_size=max(threads, 2)))
  workers = int(config_get(data_config, "worker_count", 0))
  if workers > 0:
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():  # grain workers read absl flags (tests, notebooks).
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return it


class SwapIterator:
  """Yields swap batches; `get_state()`/`set_state()` make it checkpointable.

  Each batch: {"a": uint8 (b, H, W, 3), "b": uint8 (b, H, W, 3),
  "a_landmarks": float32 (b, 68, 2), "b_landmarks": float32 (b, 68, 2),
  "a_has_landmarks": bool (b,), "b_has_landmarks": bool (b,)}.
  """

  def __init__(self, datasets: dict[str, grain.IterDataset], meta: dict):
    self._iters = {side: iter(ds) for side, ds in datasets.items()}
    self._meta = meta

  def __iter__(self) -> Iterator[dict]:
    return self

  def __next__(self) -> dict:
    batch = {}
    for side in _SIDES:
      part = next(self._iters[side])
      batch[side] = part["image"]
      batch[f"{side}_landmarks"] = part["landmarks"]
      batch[f"{side}_has_landmarks"] = part["has_landmarks"]
    return batch

  def get_state(self) -> dict:
    """JSON-serialisable position of both sides (plus what they were built from)."""
    return {"version": STATE_VERSION, "meta": dict(self._meta),
            **{side: self._iters[side].get_state() for side in _SIDES}}

  def set_state(self, state: dict) -> None:
    """Resumes at `state` (from `get_state`): the next batches equal the original's.

    A state saved for other data or options (a changed folder, another batch size
    or process count) cannot be resumed exactly: it is ignored with a warning and
    the iterator starts from the beginning of its (new) data.

    Raises:
      UserError: the state is not a swap iterator state of this version.
    """
    if (not isinstance(state, dict) or state.get("version") != STATE_VERSION
        or any(side not in state for side in _SIDES)):
      raise UserError("data iterator state is not from this version of deepjax's "
                      "swap_iterator")
    if state.get("meta") != self._meta:
      logging.warning(
          "data iterator state was saved for other data/options (%s, now %s): "
          "starting the data from the beginning", state.get("meta"), self._meta)
      return
    for side in _SIDES:
      self._iters[side].set_state(state[side])


def swap_iterator(data_config, batch_size: int, seed: int, split: str = "train",
                  shard_by_process: bool = True, shard_index: Optional[int] = None,
                  shard_count: Optional[int] = None) -> SwapIterator:
  """Batches of identities A and B for the swap families (prepares data if needed).

  Args:
    data_config: see the module docstring for the fields read.
    batch_size: per-process batch size `b` (use `host_batch_size(global)`).
    seed: shuffle seed (A and B get different seeds derived from it).
    split: "train" (shuffled when `shuffle`, repeated forever) or "test" (one pass,
      ends with the shorter side, no shuffle).
    shard_by_process: give each JAX process a disjoint part of every dataset.
    shard_index, shard_count: explicit shard (overrides `shard_by_process`).

  Returns:
    A `SwapIterator` yielding the dicts of docs/CONTRACTS.md.
  """
  if batch_size <= 0:
    raise UserError(f"batch size must be positive, got {batch_size}")
  index, count = shard_of(shard_by_process, shard_index, shard_count)
  builders = identity_builders(data_config, multihost=shard_index is None and shard_by_process)
  train = split == "train"
  shuffle = bool(config_get(data_config, "shuffle", True)) and train
  datasets, meta = {}, {"split": split, "batch_size": int(batch_size), "seed": int(seed),
                        "shard": [index, count], "shuffle": shuffle}
  for side in _SIDES:
    src = _source(builders[side], split, side)
    ds = side_dataset(src, batch_size, _side_seed(seed, side), shuffle=shuffle, repeat=train,
                      shard_index=index, shard_count=count)
    datasets[side] = to_iter(ds, data_config)
    meta[f"{side}_data"] = f"{builders[side].name}/{builders[side].builder_config.name}"
    meta[f"{side}_len"] = len(src)
  return SwapIterator(datasets, meta)


def eval_indices(n: int, index: int, count: int, per_host: int) -> tuple[np.ndarray, np.ndarray]:
  """This host's record indices padded (cyclically) to `per_host`, and validity flags."""
  own = np.arange(index, n, count)
  if own.size == 0:
    own = np.array([index % n])
    valid = np.zeros(per_host, bool)
  else:
    valid = np.arange(per_host) < own.size
  return own[np.arange(per_host) % own.size], valid


class _EvalReader:
  """(record index, valid) -> selected record + "valid" (picklable for grain workers)."""

  def __init__(self, source):
    self.source = source

  def __call__(self, item) -> dict:
    index, valid = item
    return {**_select(self.source[index]), "valid": np.bool_(valid)}


def eval_batches(data_config, batch_size: int, split: str = "test",
                 shard_by_process: bool = True, shard_index: Optional[int] = None,
                 shard_count: Optional[int] = None) -> Iterator[dict]:
  """One pass over `split` of A and B, in order, every example exactly once.

  All batches have the full per-process `batch_size` and every process gets the
  same number of batches (needed for collective evaluation): the shorter side and
  the last batch are padded by repeating examples, marked invalid in
  `a_valid` / `b_valid` (bool (b,)); weight metrics by them.

  Yields:
    The `SwapIterator` dict plus "a_valid", "b_valid": bool (b,).
  """
  if batch_size <= 0:
    raise UserError(f"batch size must be positive, got {batch_size}")
  index, count = shard_of(shard_by_process, shard_index, shard_count)
  builders = identity_builders(data_config, multihost=shard_index is None and shard_by_process)
  sources = {side: _source(builders[side], split, side) for side in _SIDES}
  per_host = max(math.ceil(len(src) / count) for src in sources.values())
  per_host = math.ceil(per_host / batch_size) * batch_size
  iters = {}
  for side, src in sources.items():
    idx, valid = eval_indices(len(src), index, count, per_host)
    items = grain.MapDataset.source([(int(i), bool(v)) for i, v in zip(idx, valid)])
    ds = items.map(_EvalReader(src))
    iters[side] = iter(to_iter(ds.batch(batch_size), data_config))
  for _ in range(per_host // batch_size):
    batch = {}
    for side in _SIDES:
      part = next(iters[side])
      batch[side] = part["image"]
      batch[f"{side}_landmarks"] = part["landmarks"]
      batch[f"{side}_has_landmarks"] = part["has_landmarks"]
      batch[f"{side}_valid"] = part["valid"]
    yield batch
