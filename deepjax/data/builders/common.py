"""Shared pieces of the deepjax TFDS builders (ArrayRecord files, no TensorFlow).

Every builder writes `array_record` files under `data_dir/<builder>/<config>/<version>/`
and is read back with `builder.as_data_source(split)` (random access, what grain
needs). Images are handed to `tfds.features.Image` as already-encoded PNG/JPEG bytes
(encoded with Pillow), which keeps TensorFlow out of both writing and reading.
"""
import contextlib
import hashlib
import io
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from deepjax.errors import UserError

# Where prepared datasets go when the caller names no folder.
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "deepjax", "datasets")
NUM_LANDMARKS = 68


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A GeneratorBasedBuilder for local data: no download checksums, no code path.

  TFDS looks for a `checksums.tsv` next to the builder's code through
  `importlib_resources` (not installed here); local builders download nothing,
  so `code_path` is None. Subclasses give `_description()` and `_features()`;
  `VIDEO_MAJOR = True` keeps records in key order (`video_key`, no TFDS shuffling) with
  a metadata dict for `set_video_counts`.
  """
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  VIDEO_MAJOR = False

  def _description(self) -> str:
    raise NotImplementedError

  def _features(self) -> tfds.features.FeaturesDict:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    video = ({"disable_shuffling": True, "metadata": tfds.core.MetadataDict()}
             if self.VIDEO_MAJOR else {})
    return tfds.core.DatasetInfo(builder=self, description=self._description(),
                                 features=self._features(), **video)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return None


def resolve_data_dir(data_dir: str | None) -> str:
  """`data_dir` (or `DEFAULT_DATA_DIR`) as an absolute path, `~` expanded."""
  return os.path.abspath(os.path.expanduser(os.fspath(data_dir or DEFAULT_DATA_DIR)))


def face_features(size: int, encoding: str = "png", **extra):
  """The features every face builder stores, plus `extra` (name -> tfds feature).

  image: uint8 (size, size, 3), stored encoded (`encoding` is 'png' or 'jpeg').
  landmarks: float32 (68, 2), (x, y) in [-1, 1] (zeros when unknown).
  has_landmarks: bool scalar.
  """
  if encoding not in ("png", "jpeg"):
    raise UserError(f"image encoding must be 'png' or 'jpeg', got '{encoding}'")
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(size, size, 3), encoding_format=encoding),
      "landmarks": tfds.features.Tensor(shape=(NUM_LANDMARKS, 2), dtype=np.float32),
      "has_landmarks": tfds.features.Tensor(shape=(), dtype=np.bool_),
      **extra,
  })


def encode_image(image: np.ndarray, encoding: str = "png", quality: int = 95) -> bytes:
  """uint8 (H, W, 3) -> PNG or JPEG bytes (Pillow)."""
  buf = io.BytesIO()
  img = Image.fromarray(np.ascontiguousarray(image))
  if encoding == "jpeg":
    img.save(buf, format="JPEG", quality=quality)
  else:
    img.save(buf, format="PNG", compress_level=3)
  return buf.getvalue()


def center_crop_box(width: int, height: int) -> tuple[int, int, int]:
  """(left, top, side) of the largest centred square of a width x height image."""
  side = min(width, height)
  return (width - side) // 2, (height - side) // 2, side


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
  """Centre-crops uint8 (H, W, 3) to a square, then resizes to (size, size, 3).

  Aspect ratio is kept (no stretching): the longer side loses equal margins.
  Downscaling uses Lanczos (Pillow, antialiased; with reducing_gap=3, i.e. an
  integer box reduction first while the image is over 3x the target), upscaling bicubic.
  """
  h, w = image.shape[:2]
  left, top, side = center_crop_box(w, h)
  crop = image[top:top + side, left:left + side]
  if side == size:
    return np.ascontiguousarray(crop)
  img = Image.fromarray(np.ascontiguousarray(crop))
  if side > size:  # reduce by an integer box first, then Lanczos (Pillow's reducing_gap).
    out = img.resize((size, size), resample=Image.Resampling.LANCZOS, reducing_gap=3.0)
  else:
    out = img.resize((size, size), resample=Image.Resampling.BICUBIC)
  return np.asarray(out, dtype=np.uint8)


def crop_landmarks(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
  """Maps [-1, 1] landmarks of a width x height image into its centred square crop.

  Uses the edge convention of docs/CONTRACTS.md: u = -1 is the left edge, so a
  point's edge coordinate is `(u + 1) / 2 * W`; resizing does not change [-1, 1]
  coordinates, cropping shifts and rescales them.

  Args:
    landmarks: float (N, 2) (x, y) in [-1, 1] of the full image.
  Returns:
    float32 (N, 2) in the crop's [-1, 1] frame (points outside the crop fall
    outside [-1, 1]).
  """
  left, top, side = center_crop_box(width, height)
  lm = np.asarray(landmarks, np.float64)
  x = (lm[:, 0] + 1) / 2 * width - left
  y = (lm[:, 1] + 1) / 2 * height - top
  return np.stack([x / side * 2 - 1, y / side * 2 - 1], axis=-1).astype(np.float32)


def slug(text: str, max_len: int = 32) -> str:
  """Lower-case [a-z0-9_] version of `text` for TFDS config names."""
  s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
  return (s or "x")[:max_len]


def fingerprint(*parts) -> str:
  """Short stable hash (12 hex digits) of the string forms of `parts`."""
  h = hashlib.sha256()
  for p in parts:
    h.update(repr(p).encode("utf-8"))
    h.update(b"\x00")
  return h.hexdigest()[:12]


def name_fraction(name: str) -> float:
  """A deterministic number in [0, 1) from a file name (SHA-256 based)."""
  digest = hashlib.sha256(name.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def prepare(builder):
  """Runs `download_and_prepare` (ArrayRecord) unless the data is already there."""
  if not builder.is_prepared():
    logging.info("preparing data set %s/%s from local files in %s (once; later runs reuse it)",
                 builder.name, builder.builder_config.name, builder.data_dir)
    tfds.disable_progress_bar()
    try:
      # TFDS prints "Downloading and preparing dataset Unknown size" to stdout; nothing is
      # downloaded here, so that line is swallowed.
      with contextlib.redirect_stdout(io.StringIO()):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    except FileExistsError:
      # Another process (a second run, another host of this run) prepared the same data
      # from the same files while this one did: its copy is identical, so it is used.
      if not os.path.isdir(builder.data_path):
        raise
      logging.info("data set %s/%s was prepared meanwhile by another process; using it",
                   builder.name, builder.builder_config.name)
    except ValueError as e:
      if "number of generated examples" in str(e):  # every file of a split failed.
        raise UserError(f"no usable data for {builder.name}/{builder.builder_config.name}: "
                        f"{str(e).splitlines()[0]}") from None
      raise
  return builder


# ---- video-major datasets (talking_heads, synthetic_videos): records in key order.

_KEY_STRIDE = 10**8


def video_key(video_id: int, position: int) -> int:
  """Record key that sorts video-major (with `disable_shuffling=True` in the info)."""
  return int(video_id) * _KEY_STRIDE + int(position)


def set_video_counts(builder, split: str, names: list[str], counts: list[int]) -> None:
  """Records the videos of `split` and their record counts in the dataset metadata."""
  builder.info.metadata[split] = {"videos": list(names), "counts": [int(c) for c in counts]}


def video_offsets(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(first record index, record count) of each video of `split`: int64 (V,) each.

  Read from the dataset metadata, without touching the records.
  """
  meta = builder.info.metadata or {}
  if split not in meta:
    raise UserError(f"dataset {builder.name}/{builder.builder_config.name} has no '{split}' "
                    "videos")
  counts = np.asarray(meta[split]["counts"], np.int64)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
  return starts, counts
