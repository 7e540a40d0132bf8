"""grain pipeline of the detection task: the `detection` builder -> host-local batches.

Data config fields (configs/detect.py):
  source: "synthetic" (procedural real faces, written once under data_dir) or
    "folders".
  size: crop side in pixels.
  folders: ("generator:path", ...) crop folders (`deepjax.data.builders.detection`);
    generator `real` for real faces.
  synthetic_identities, synthetic_frames: identities (seeds 0..n-1) and frames per
    identity of the synthetic source.
  test_fraction, test_identities: the identity split; val_identities: training
    identities moved to a "validation" split (the loop's `eval_split`).
  data_dir, worker_count, read_threads, shuffle: as `deepjax.data.pipeline`.

Batches: {"image": uint8 (b,S,S,3), "landmarks": float32 (b,68,2), "has_landmarks":
bool (b,), "label": int32 (b,), "mask": uint8 (b,S,S,1), "clip_id": int32 (b,) (a hash of
the source clip's name, for video-level metrics), "index": int32 (b,) (record index in its
split), "valid": bool (b,)}. The train split is sharded per process,
shuffled and repeated (every row valid); other splits are one ordered pass padded
to whole batches (padding rows invalid).
"""
import math
import os
from typing import Iterator, Optional

import grain
import numpy as np

from deepjax.data import pipeline
from deepjax.data.builders import common, detection
from deepjax.errors import UserError

STATE_VERSION = 1


def parse_folders(specs) -> list[tuple[str, str]]:
  """("generator:path", ...) -> [(generator, path)]; UserError for a malformed entry."""
  out = []
  for spec in specs or ():
    generator, sep, path = str(spec).partition(":")
    if not sep or not generator.strip() or not path.strip():
      raise UserError(f"data.folders entries are 'generator:path' (e.g. real:/data/faces), "
                      f"got {spec!r}")
    out.append((generator.strip(), path.strip()))
  return out


def synthetic_folder(data_config) -> str:
  """Writes (once) and returns the synthetic real-face folder of `data_config`."""
  size = int(pipeline.config_get(data_config, "size"))
  n_ids = int(pipeline.config_get(data_config, "synthetic_identities", 8))
  frames = int(pipeline.config_get(data_config, "synthetic_frames", 32))
  root = common.resolve_data_dir(pipeline.config_get(data_config, "data_dir", None) or None)
  folder = os.path.join(root, "detection_synthetic", f"{n_ids}x{frames}_{size}")
  if not os.path.exists(os.path.join(folder, "alignments.json")):
    detection.write_synthetic_folder(folder, range(n_ids), frames, size)
  return folder


def detection_folders(data_config) -> list[tuple[str, str]]:
  """The (generator, folder) pairs of `data_config` (writing the synthetic folder once)."""
  source = pipeline.config_get(data_config, "source")
  if source == "synthetic":
    return [(detection.REAL, synthetic_folder(data_config))]
  if source == "folders":
    folders = parse_folders(pipeline.config_get(data_config, "folders", ()))
    if not folders:
      raise UserError("data.folders is empty: give crop folders as 'real:PATH' (and "
                      "'GENERATOR:PATH' for fakes)")
    return folders
  raise UserError(f"data source must be 'synthetic' or 'folders', got '{source}'")


def detection_builder(data_config, multihost: bool = True,
                      on_example=None) -> detection.Detection:
  """Prepares (if needed) and returns the detection builder of `data_config`;
  `on_example` as `detection.prepare_detection`'s."""
  if pipeline.config_get(data_config, "source") != "synthetic":
    detection_folders(data_config)  # bad folder specs fail on every process, before any work

  def make():
    return detection.prepare_detection(
        detection_folders(data_config), int(pipeline.config_get(data_config, "size")),
        pipeline.config_get(data_config, "data_dir", None) or None,
        float(pipeline.config_get(data_config, "test_fraction", 0.2)),
        tuple(pipeline.config_get(data_config, "test_identities", ())), on_example=on_example,
        val_identities=tuple(pipeline.config_get(data_config, "val_identities", ())))
  return pipeline.prepare_once(make, multihost)


class _Reader:
  """(record index, valid) -> the batch fields of one record (picklable for workers)."""

  def __init__(self, source):
    self.source = source

  def __call__(self, item) -> dict:
    index, valid = item
    r = self.source[int(index)]
    return {"image": np.asarray(r["image"], np.uint8),
            "landmarks": np.asarray(r["landmarks"], np.float32),
            "has_landmarks": np.asarray(r["has_landmarks"], np.bool_),
            "label": np.asarray(r["label"], np.int32),
            "mask": np.asarray(r["mask"], np.uint8),
            "clip_id": clip_id(bytes(r["clip"]).decode()),
            "index": np.int32(index), "valid": np.bool_(valid)}


def clip_id(clip: str) -> np.int32:
  """The "clip_id" of a batch's crops of source clip `clip`: a hash of its name."""
  return np.int32(common.name_fraction(clip) * 2**31)


class DetectionIterator:
  """Yields detection batches; `get_state()` / `set_state()` make it checkpointable."""

  def __init__(self, dataset: grain.IterDataset, meta: dict):
    self._it = iter(dataset)
    self._meta = meta

  def __iter__(self) -> Iterator[dict]:
    return self

  def __next__(self) -> dict:
    return next(self._it)

  def get_state(self) -> dict:
    return {"version": STATE_VERSION, "meta": dict(self._meta), "iter": self._it.get_state()}

  def set_state(self, state: dict) -> None:
    """Resumes at `state`; a state saved for other data or options is ignored (warning)."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "iter" not in state:
      raise UserError("data iterator state is not from this version of deepjax's "
                      "detection_iterator")
    if state.get("meta") != self._meta:
      common.log.warning("data iterator state was saved for other data/options: starting "
                         "the data from the beginning")
      return
    self._it.set_state(state["iter"])


def detection_iterator(data_config, batch_size: int, seed: int, split: str = "train",
                       shard_by_process: bool = True, shard_index: Optional[int] = None,
                       shard_count: Optional[int] = None) -> DetectionIterator:
  """Batches of labelled crops of `split` (see the module docstring)."""
  if batch_size <= 0:
    raise UserError(f"batch size must be positive, got {batch_size}")
  index, count = pipeline.shard_of(shard_by_process, shard_index, shard_count)
  builder = detection_builder(data_config, multihost=shard_index is None and shard_by_process)
  if split not in builder.info.splits:
    raise UserError(f"the detection data has no '{split}' split (has "
                    f"{sorted(builder.info.splits)}): training needs an identity outside "
                    "data.test_identities, evaluation one inside it, validation one in "
                    "data.val_identities")
  source = builder.as_data_source(split)
  n = len(source)
  train = split == "train"
  if train:
    if n < count:
      raise UserError(f"{n} training crops cannot be split over {count} processes")
    ds = grain.MapDataset.source([(i, True) for i in range(index, n, count)])
    if bool(pipeline.config_get(data_config, "shuffle", True)):
      ds = ds.shuffle(seed=int(seed) & 0xFFFFFFFF)
    ds = ds.repeat()
  else:  # one pass, padded so that every process gets the same number of full batches.
    per_host = math.ceil(math.ceil(n / count) / batch_size) * batch_size
    idx, valid = pipeline.eval_indices(n, index, count, per_host)
    ds = grain.MapDataset.source([(int(i), bool(v)) for i, v in zip(idx, valid)])
  ds = ds.map(_Reader(source)).batch(batch_size, drop_remainder=True)
  meta = {"data": f"{builder.name}/{builder.builder_config.name}", "split": split,
          "batch_size": int(batch_size), "seed": int(seed), "shard": [index, count], "len": n}
  return DetectionIterator(pipeline.to_iter(ds, data_config), meta)
