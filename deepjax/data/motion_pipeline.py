"""grain pipelines of frame pairs (source, driving) from one video, for the motion model.

Data config fields read (ConfigDict or dict; aliases in brackets are the names of
configs/fomm_*.py):
  source: "videos" (a folder of clips, TFDS `talking_heads`) | "synthetic"
    (TFDS `synthetic_videos`: one rendered clip per identity seed).
  size: image side in pixels.
  videos: folder [video_dir]; frame_step (default 1), max_frames (default 0 = all),
    test_fraction (default 0.1), test_videos [held_out] (default none; clip names or
    stems); a folder with train/ and test/ sub-folders gives the split itself.
  synthetic: num_identities (train clips; identity seeds identity_offset + 0..n-1),
    num_test_identities (default 0; the next seeds), num_frames (per clip),
    identity_offset (default 1000).
  repeats [num_repeats]: pair slots per video (or identity) per epoch (default 1;
    first-order-model used 75-150).
  id_sampling (default False): slots per identity (clip-name prefix before '#',
    VoxCeleb style) instead of per clip; each slot picks one clip of its identity.
  augmentation (optional dict, first-order-model's): horizontal_flip, time_flip (bool),
    brightness, contrast, saturation, hue (jitter amounts); one draw per pair, applied
    to both frames alike. Absent = no augmentation.
  data_dir, worker_count, shuffle, read_threads: as in `deepjax.data.pipeline`.

Training pairs: an epoch is `repeats` slots per video (identity); the slots are
sharded per host, shuffled (reshuffled each epoch) and repeated forever; slot `k` at
stream position `index` draws its clip, two distinct frames and its augmentation from
`np.random.default_rng([seed, shard, index])`, so the stream is a pure function of
(seed, shard, position) and the iterator state restores exactly.
"""
import math
from typing import Iterator, Optional

import grain
import numpy as np
from absl import logging

from deepjax.data import pipeline
from deepjax.data.builders import common
from deepjax.data.builders import synthetic_faces
from deepjax.data.builders import talking_heads
from deepjax.errors import UserError

_get = pipeline.config_get


def _first(cfg, names, default=...):
  for n in names[:-1]:
    v = _get(cfg, n, None)
    if v not in (None, "", ()):
      return v
  return _get(cfg, names[-1], default)


def video_builder(data_config, multihost: bool = True):
  """Prepares (if needed) and returns the frames dataset builder of `data_config`."""
  source = _get(data_config, "source")
  size = int(_get(data_config, "size"))
  data_dir = _get(data_config, "data_dir", None)
  if source == "videos":
    folder = str(_first(data_config, ("folder", "video_dir"), ""))
    if not folder.strip():
      raise UserError("data.video_dir (or data.folder) is empty: set the folder of videos")

    def make():
      return talking_heads.prepare_talking_heads(
          folder, size, data_dir,
          frame_step=int(_get(data_config, "frame_step", 1)),
          max_frames=int(_get(data_config, "max_frames", 0)),
          test_fraction=float(_get(data_config, "test_fraction", 0.1)),
          test_videos=tuple(_first(data_config, ("test_videos", "held_out"), ())))
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
  return pipeline.prepare_once(make, multihost)


def _split(builder, split):
  if split not in builder.info.splits:
    raise UserError(f"the motion dataset has no '{split}' split (has "
                    f"{sorted(builder.info.splits)}); hold out some videos/identities")
  starts, counts = common.video_offsets(builder, split)
  names = builder.info.metadata[split]["videos"]
  return builder.as_data_source(split), starts, counts, names


def identity_groups(names: list[str]) -> list[np.ndarray]:
  """Video indices grouped by identity (clip-name prefix before '#'), sorted by identity."""
  groups: dict[str, list[int]] = {}
  for i, n in enumerate(names):
    groups.setdefault(n.rsplit("/", 1)[-1].split("#", 1)[0], []).append(i)
  return [np.asarray(groups[k], np.int64) for k in sorted(groups)]


def _image(record) -> np.ndarray:
  return np.asarray(record["image"], np.uint8)


# ----------------------------------------------------------------------------- augmentation


def _rgb_to_hsv(rgb):
  """float (..., 3) RGB in [0, 1] -> (h, s, v) in [0, 1], as `colorsys.rgb_to_hsv`."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  v = rgb.max(-1)
  c = v - rgb.min(-1)
  s = np.where(v > 0, c / np.maximum(v, 1e-12), 0.0)
  cs = np.maximum(c, 1e-12)
  h = np.where(v == r, (g - b) / cs, np.where(v == g, 2.0 + (b - r) / cs, 4.0 + (r - g) / cs))
  h = np.where(c > 0, (h / 6.0) % 1.0, 0.0)
  return h, s, v


def _hsv_to_rgb(h, s, v):
  """Inverse of `_rgb_to_hsv` (as `colorsys.hsv_to_rgb`): float (..., 3)."""
  i = np.floor(h * 6.0)
  f = h * 6.0 - i
  p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
  i = i.astype(np.int64) % 6
  r = np.choose(i, [v, q, p, p, t, v])
  g = np.choose(i, [t, v, v, q, p, p])
  b = np.choose(i, [p, p, t, v, v, q])
  return np.stack([r, g, b], -1)


def augment_pair(rng: np.random.Generator, source: np.ndarray, driving: np.ndarray,
                 aug: dict) -> tuple[np.ndarray, np.ndarray]:
  """first-order-model's pair augmentation, numpy, one draw shared by both frames.

  Args:
    rng: numpy Generator (consumed in a fixed order: flip, time flip, jitter).
    source, driving: uint8 (H, W, 3).
    aug: {"horizontal_flip", "time_flip": bool, "brightness", "contrast",
      "saturation", "hue": float}; missing keys are off. Colour jitter follows
      torchvision's ColorJitter factors (brightness/contrast/saturation factor in
      [max(0, 1 - x), 1 + x], hue shift in [-hue, hue] of a turn), in that order;
      contrast pulls to each frame's mean luma (ITU-R 601-2).
  Returns:
    The augmented (source, driving), uint8 (H, W, 3).
  """
  flip = rng.random() < 0.5
  swap = rng.random() < 0.5
  factors = [rng.uniform(max(0.0, 1 - x), 1 + x) if x else 1.0
             for x in (float(aug.get(k, 0) or 0) for k in ("brightness", "contrast",
                                                           "saturation"))]
  hue = float(aug.get("hue", 0) or 0)
  shift = rng.uniform(-hue, hue) if hue else 0.0
  if aug.get("horizontal_flip") and flip:
    source, driving = source[:, ::-1], driving[:, ::-1]
  if aug.get("time_flip") and swap:
    source, driving = driving, source
  if factors == [1.0, 1.0, 1.0] and shift == 0.0:
    return np.ascontiguousarray(source), np.ascontiguousarray(driving)
  luma = np.array([0.299, 0.587, 0.114])

  def jitter(img):
    x = img.astype(np.float64) / 255.0
    x = np.clip(x * factors[0], 0, 1)
    x = np.clip((x - (x @ luma).mean()) * factors[1] + (x @ luma).mean(), 0, 1)
    gray = (x @ luma)[..., None]
    x = np.clip((x - gray) * factors[2] + gray, 0, 1)
    if shift:
      h, s, v = _rgb_to_hsv(x)
      x = _hsv_to_rgb((h + shift) % 1.0, s, v)
    return np.round(x * 255).astype(np.uint8)

  return jitter(source), jitter(driving)


# ----------------------------------------------------------------------------- readers


class _PairReader:
  """(stream index, slot) -> {"source", "driving", "video"} (picklable for workers)."""

  def __init__(self, source, starts, counts, groups, seed, shard_index, aug):
    self.source, self.starts, self.counts, self.groups = source, starts, counts, groups
    self.seed, self.shard_index, self.aug = int(seed), int(shard_index), aug

  def __call__(self, index: int, slot: int) -> dict:
    rng = np.random.default_rng([self.seed, self.shard_index, int(index)])
    group = self.groups[int(slot) % len(self.groups)]
    vid = int(group[rng.integers(len(group))]) if len(group) > 1 else int(group[0])
    n = int(self.counts[vid])
    i, j = rng.choice(n, size=2, replace=False) if n > 1 else (0, 0)
    first = int(self.starts[vid])
    src, drv = _image(self.source[first + int(i)]), _image(self.source[first + int(j)])
    if self.aug:
      src, drv = augment_pair(rng, src, drv, self.aug)
    return {"source": src, "driving": drv, "video": np.int64(vid)}


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
      logging.warning("data iterator state was saved for other data/options (%s, now %s):"
                         " starting the data from the beginning", state.get("meta"),
                         self._meta)
      return
    self._it.set_state(state["pairs"])


def _augmentation(data_config) -> dict:
  aug = _get(data_config, "augmentation", None)
  if not aug:
    return {}
  aug = dict(aug.to_dict() if hasattr(aug, "to_dict") else aug)
  known = {"horizontal_flip", "time_flip", "brightness", "contrast", "saturation", "hue"}
  unknown = sorted(set(aug) - known)
  if unknown:
    raise UserError(f"unknown data.augmentation keys: {', '.join(unknown)}")
  return aug


def pair_iterator(data_config, batch_size: int, seed: int, split: str = "train",
                  shard_by_process: bool = True, shard_index: Optional[int] = None,
                  shard_count: Optional[int] = None) -> PairIterator:
  """Endless (train) or one-pass (other splits) batches of same-video frame pairs.

  Args:
    data_config: see the module docstring.
    batch_size: per-process batch size.
    seed: pair sampling, augmentation and shuffle seed.
    split: "train", or "test" (one pass of the slots, unshuffled, not augmented).
    shard_by_process, shard_index, shard_count: as `pipeline.swap_iterator`.
  """
  if batch_size <= 0:
    raise UserError(f"batch size must be positive, got {batch_size}")
  index, count = pipeline.shard_of(shard_by_process, shard_index, shard_count)
  builder = video_builder(data_config, multihost=shard_index is None and shard_by_process)
  source, starts, counts, names = _split(builder, split)
  if bool(_get(data_config, "id_sampling", False)):
    groups = identity_groups(names)
  else:
    groups = [np.asarray([v], np.int64) for v in range(len(counts))]
  repeats = max(1, int(_first(data_config, ("repeats", "num_repeats"), 1)))
  slots = len(groups) * repeats
  if slots < count:
    raise UserError(f"{slots} pair slots cannot be split over {count} processes; raise "
                    "data.repeats")
  train = split == "train"
  shuffle = bool(_get(data_config, "shuffle", True)) and train
  aug = _augmentation(data_config) if train else {}
  ds = grain.MapDataset.range(slots)
  if count > 1:
    ds = ds[index::count]
  if shuffle:
    ds = ds.shuffle(seed=int(seed) & 0xFFFFFFFF)
  if train:
    ds = ds.repeat()
  ds = ds.map_with_index(_PairReader(source, starts, counts, groups, seed, index, aug))
  ds = ds.batch(batch_size, drop_remainder=True)
  meta = {"split": split, "batch_size": int(batch_size), "seed": int(seed),
          "shard": [index, count], "shuffle": shuffle, "repeats": repeats,
          "groups": len(groups), "data": f"{builder.name}/{builder.builder_config.name}"}
  return PairIterator(pipeline.to_iter(ds, data_config), meta)


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
  index, count = pipeline.shard_of(shard_by_process, shard_index, shard_count)
  builder = video_builder(data_config, multihost=shard_index is None and shard_by_process)
  source, starts, counts, _ = _split(builder, split)
  limit = counts if max_frames_per_video is None else np.minimum(counts, max_frames_per_video)
  pairs = [(v, f) for v in range(len(counts)) for f in range(int(limit[v]))]
  per_host = math.ceil(len(pairs) / count)
  per_host = math.ceil(per_host / batch_size) * batch_size
  own = pairs[index::count] or [pairs[0]]
  n_own = len(pairs[index::count])
  items = [(own[k % len(own)], k < n_own) for k in range(per_host)]
  ds = grain.MapDataset.source(items).map(_EvalPairReader(source, starts)).batch(batch_size)
  yield from pipeline.to_iter(ds, data_config)
