"""grain pipelines of frame pairs (source, driving) from one video, for the motion model.

Data config fields read (ConfigDict or dict):
  source: "videos" (a folder of videos, TFDS `talking_heads`) | "synthetic"
    (TFDS `synthetic_videos`: one rendered clip per identity seed).
  size: image side in pixels.
  videos: folder; frame_step (default 1), max_frames (default 0 = all),
    test_fraction (default 0.1), test_videos (default: none; names or stems).
  synthetic: num_identities (train clips; identity seeds identity_offset + 0..n-1),
    num_test_identities (default 0; the next seeds), num_frames (per clip),
    identity_offset (default 1000).
  repeats: pairs per video per epoch (default 1; FOMM used 75-150).
  data_dir, worker_count, shuffle, read_threads: as in `deepjax.data.pipeline`.

Training pairs: an epoch is `repeats` slots per video; the slots are sharded per
host, shuffled (reshuffled each epoch) and repeated forever; each slot draws two
distinct frames of its video from `np.random.default_rng([seed, shard, index])`,
so the stream is a pure function of (seed, shard, position) and the iterator state
restores exactly.
"""
import math
from typing import Iterator, Optional

import grain
import numpy as np

from deepjax.data import pipeline
from deepjax.data.builders import common
from deepjax.data.builders import synthetic_faces
from deepjax.data.builders import talking_heads
from deepjax.errors import UserError

_get = pipeline._get  # pylint: disable=protected-access


def video_builder(data_config, multihost: bool = True):
  """Prepares (if needed) and returns the frames dataset builder of `data_config`."""
  source = _get(data_config, "source")
  size = int(_get(data_config, "size"))
  data_dir = _get(data_config, "data_dir", None)
  if source == "videos":
    def make():
      return talking_heads.prepare_talking_heads(
          _get(data_config, "folder"), size, data_dir,
          frame_step=int(_get(data_config, "frame_step", 1)),
          max_frames=int(_get(data_config, "max_frames", 0)),
          test_fraction=float(_get(data_config, "test_fraction", 0.1)),
          test_videos=tuple(_get(data_config, "test_videos", ())))
  elif source == "synthetic":
    offset = int(_get(data_config, "identity_offset", 1000))
    n_train = int(_get(data_config, "num_identities"))
    n_test = int(_get(data_config, "num_test_identities", 0))

    def make():
      return synthetic_faces.prepare_synthetic_videos(
          range(offset, offset + n_train), range(offset + n_train, offset + n_train + n_test),
          int(_get(data_config, "num_frames")), size, data_dir)
  else:
    raise UserError(f"motion data source must be 'videos' or 'synthetic', got '{source}'")
  return pipeline._prepare_once(make, multihost)  # pylint: disable=protected-access


def _split(builder, split):
  if split not in builder.info.splits:
    raise UserError(f"the motion dataset has no '{split}' split (has "
                    f"{sorted(builder.info.splits)}); hold out some videos/identities")
  starts, counts = common.video_offsets(builder, split)
  return builder.as_data_source(split), starts, counts


def _image(record) -> np.ndarray:
  return np.asarray(record["image"], np.uint8)


class _PairReader:
  """slot (global index) -> {"source", "driving", "video"} of one video (picklable)."""

  def __init__(self, source, starts, counts, seed, shard_index):
    self.source, self.starts, self.counts = source, starts, counts
    self.seed, self.shard_index = int(seed), int(shard_index)

  def __call__(self, index: int, slot: int) -> dict:
    vid = int(slot) % len(self.counts)
    n = int(self.counts[vid])
    rng = np.random.default_rng([self.seed, self.shard_index, int(index)])
    if n > 1:
      i, j = rng.choice(n, size=2, replace=False)
    else:
      i = j = 0
    first = int(self.starts[vid])
    return {"source": _image(self.source[first + int(i)]),
            "driving": _image(self.source[first + int(j)]),
            "video": np.int64(vid)}


class _EvalPairReader:
  """((video, frame), valid) -> frame 0 and `frame` of the video (picklable)."""

  def __init__(self, source, starts):
    self.source, self.starts = source, starts

  def __call__(self, item) -> dict:
    (vid, frame), valid = item
    first = int(self.starts[vid])
    return {"source": _image(self.source[first]),
            "driving": _image(self.source[first + frame]),
            "video": np.int64(vid), "frame": np.int64(frame), "valid": np.bool_(valid)}


class PairIterator:
  """Yields {"source", "driving": uint8 (b, H, W, 3), "video": int64 (b,)}.

  `get_state()` / `set_state()` as `pipeline.SwapIterator` (JSON-serialisable, exact).
  """

  def __init__(self, dataset: grain.IterDataset, meta: dict):
    self._it = iter(dataset)
    self._meta = meta

  def __iter__(self) -> Iterator[dict]:
    return self

  def __next__(self) -> dict:
    return next(self._it)

  def get_state(self) -> dict:
    return {"version": pipeline.STATE_VERSION, "meta": dict(self._meta),
            "pairs": self._it.get_state()}

  def set_state(self, state: dict) -> None:
    """Resumes at `state`; a state of other data/options is ignored with a warning."""
    if (not isinstance(state, dict) or state.get("version") != pipeline.STATE_VERSION
        or "pairs" not in state):
      raise UserError("data iterator state is not from deepjax's pair_iterator")
    if state.get("meta") != self._meta:
      common.log.warning("data iterator state was saved for other data/options (%s, now %s):"
                         " starting the data from the beginning", state.get("meta"),
                         self._meta)
      return
    self._it.set_state(state["pairs"])


def pair_iterator(data_config, batch_size: int, seed: int, split: str = "train",
                  shard_by_process: bool = True, shard_index: Optional[int] = None,
                  shard_count: Optional[int] = None) -> PairIterator:
  """Endless (train) or one-pass (other splits) batches of same-video frame pairs.

  Args:
    data_config: see the module docstring.
    batch_size: per-process batch size.
    seed: pair sampling and shuffle seed.
    split: "train" or "test" ("test": one pass of `repeats` slots per video, unshuffled).
    shard_by_process, shard_index, shard_count: as `pipeline.swap_iterator`.
  """
  if batch_size <= 0:
    raise UserError(f"batch size must be positive, got {batch_size}")
  index, count = pipeline._shard(shard_by_process, shard_index, shard_count)  # pylint: disable=protected-access
  builder = video_builder(data_config, multihost=shard_index is None and shard_by_process)
  source, starts, counts = _split(builder, split)
  repeats = int(_get(data_config, "repeats", 1))
  slots = len(counts) * max(repeats, 1)
  if slots < count:
    raise UserError(f"{slots} pair slots cannot be split over {count} processes; raise "
                    "data.repeats")
  train = split == "train"
  shuffle = bool(_get(data_config, "shuffle", True)) and train
  ds = grain.MapDataset.range(slots)
  if count > 1:
    ds = ds[index::count]
  if shuffle:
    ds = ds.shuffle(seed=int(seed) & 0xFFFFFFFF)
  if train:
    ds = ds.repeat()
  ds = ds.map_with_index(_PairReader(source, starts, counts, seed, index))
  ds = ds.batch(batch_size, drop_remainder=True)
  meta = {"split": split, "batch_size": int(batch_size), "seed": int(seed),
          "shard": [index, count], "shuffle": shuffle, "repeats": repeats,
          "data": f"{builder.name}/{builder.builder_config.name}"}
  return PairIterator(pipeline._to_iter(ds, data_config), meta)  # pylint: disable=protected-access


def eval_pairs(data_config, batch_size: int, split: str = "test",
               max_frames_per_video: Optional[int] = None, shard_by_process: bool = True,
               shard_index: Optional[int] = None, shard_count: Optional[int] = None
               ) -> Iterator[dict]:
  """Reconstruction pairs for evaluation: each video's frame 0 drives to every frame.

  Every (video, frame) pair appears exactly once over all processes; batches are
  full-size and equally many on every process, padding marked by `valid`.

  Yields:
    {"source", "driving": uint8 (b, H, W, 3), "video", "frame": int64 (b,),
     "valid": bool (b,)}; `frame` indexes the video's stored frames.
  """
  if batch_size <= 0:
    raise UserError(f"batch size must be positive, got {batch_size}")
  index, count = pipeline._shard(shard_by_process, shard_index, shard_count)  # pylint: disable=protected-access
  builder = video_builder(data_config, multihost=shard_index is None and shard_by_process)
  source, starts, counts = _split(builder, split)
  limit = counts if max_frames_per_video is None else np.minimum(counts, max_frames_per_video)
  pairs = [(v, f) for v in range(len(counts)) for f in range(int(limit[v]))]
  per_host = math.ceil(len(pairs) / count)
  per_host = math.ceil(per_host / batch_size) * batch_size
  own = pairs[index::count] or [pairs[0]]
  n_own = len(pairs[index::count])
  items = [(own[k % len(own)], k < n_own) for k in range(per_host)]
  ds = grain.MapDataset.source(items).map(_EvalPairReader(source, starts)).batch(batch_size)
  yield from pipeline._to_iter(ds, data_config)  # pylint: disable=protected-access
