"""TFDS builder `face_folders`: one folder of face images = one identity.

Input folder:
  - image files of any common format, size and mode (`deepjax.data.video.read_image`
    handles grayscale, RGBA, palette, 16-bit, CMYK, EXIF orientation);
  - optionally `alignments.json`, written by the extractor (`deepjax.extract`):

        {"faces": [{"file": "0001.png",
                    "landmarks": [[x, y], ... 68 points]}, ...]}

    `file` is a name inside the folder; `landmarks` are the 68 iBUG points of that
    face in the [-1, 1] frame of *that image file* (x = -1 left edge, +1 right edge,
    y = -1 top edge; docs/CONTRACTS.md). Other keys are ignored. Images without a
    valid entry get zero landmarks and `has_landmarks=False`.

Each image is centre-cropped to a square (aspect kept; the longer side loses equal
margins; landmarks are mapped into the crop) and resized to `size` x `size`.
Unreadable files are skipped with one warning listing them; a folder without any
usable image is a `UserError`.

Splits: `train`, and `test` when `test_fraction > 0`: a file is held out when
`name_fraction(file name) < test_fraction` (SHA-256 of the name), so a file keeps
its split when others are added. With at least two usable images neither split is
left empty (the lowest/highest-hash file moves over).

Features: `image` uint8 (size, size, 3) stored as PNG (or JPEG), `landmarks` float32
(68, 2) in [-1, 1], `has_landmarks` bool, `file` (the source file name, as bytes).

The config name carries a fingerprint of the folder (file names, sizes, mtimes,
alignments.json) and of the options, so a changed folder is prepared again into a
new directory (old ones are left in `data_dir`; delete them freely).
"""
import dataclasses
import json
import os

import numpy as np
from absl import logging
import tensorflow_datasets as tfds

from deepjax.data import video
from deepjax.data.builders import common
from deepjax.errors import UserError

ALIGNMENTS_FILE = "alignments.json"


@dataclasses.dataclass
class FaceFoldersConfig(tfds.core.BuilderConfig):
  """folder: the image folder; size: output side; test_fraction in [0, 1)."""
  folder: str = ""
  size: int = 64
  test_fraction: float = 0.1
  encoding: str = "png"


def read_alignments(folder: str) -> dict[str, np.ndarray]:
  """`alignments.json` of `folder` as {file name: float32 (68, 2)}; {} if absent.

  Entries with a wrong shape or non-finite values are ignored (with a warning).
  The first entry of a file wins when a file has several faces.

  Raises:
    UserError: the file exists but is not valid JSON of the documented format.
  """
  path = os.path.join(folder, ALIGNMENTS_FILE)
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    faces = data["faces"]
    if not isinstance(faces, list):
      raise TypeError("'faces' is not a list")
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"bad {ALIGNMENTS_FILE} ({type(e).__name__}: {e}): {path}") from None
  out, bad = {}, []
  for i, face in enumerate(faces):
    try:
      name = os.path.basename(str(face["file"]))
      lm = np.asarray(face["landmarks"], dtype=np.float32)
    except (KeyError, TypeError, ValueError):
      bad.append(str(i))
      continue
    if lm.shape != (common.NUM_LANDMARKS, 2) or not np.all(np.isfinite(lm)):
      bad.append(name)
      continue
    out.setdefault(name, lm)
  if bad:
    logging.warning("%s: ignored %d malformed entries: %s", path, len(bad),
                       ", ".join(bad[:20]))
  return out


def folder_fingerprint(folder: str) -> str:
  """Hash of the image files (names, sizes, mtimes) and alignments.json of `folder`."""
  items = []
  paths = video.list_images(folder)
  align = os.path.join(folder, ALIGNMENTS_FILE)
  if os.path.exists(align):
    paths = paths + [align]
  for p in paths:
    st = os.stat(p)
    items.append((os.path.basename(p), st.st_size, st.st_mtime_ns))
  return common.fingerprint(*items)


def split_files(names: list[str], test_fraction: float) -> tuple[list[str], list[str]]:
  """(train, test) file names, deterministic by name hash (see module docstring)."""
  if test_fraction <= 0:
    return list(names), []
  test = [n for n in names if common.name_fraction(n) < test_fraction]
  train = [n for n in names if common.name_fraction(n) >= test_fraction]
  by_hash = sorted(names, key=common.name_fraction)
  if len(names) >= 2 and not test:
    test, train = [by_hash[0]], [n for n in names if n != by_hash[0]]
  if len(names) >= 2 and not train:
    train, test = [by_hash[-1]], [n for n in names if n != by_hash[-1]]
  return sorted(train), sorted(test)


class FaceFolders(common.LocalBuilder):
  """Face images of one identity from a folder (see module docstring)."""

  def _description(self) -> str:
    return f"Faces of one identity from {self.builder_config.folder}."

  def _features(self) -> tfds.features.FeaturesDict:
    cfg = self.builder_config
    return common.face_features(cfg.size, cfg.encoding,
                                file=tfds.features.Tensor(shape=(), dtype=np.object_))

  def _usable_files(self) -> list[str]:
    """Names of the images that decode; warns about the others."""
    cfg = self.builder_config
    paths = video.list_images(cfg.folder)
    if not paths:
      raise UserError(f"no image files in folder: {cfg.folder}")
    good, bad = [], []
    for p in paths:
      try:
        video.read_image(p)
        good.append(os.path.basename(p))
      except UserError as e:
        bad.append(f"{os.path.basename(p)} ({e})")
    if bad:
      logging.warning("skipped %d unreadable image(s) in %s: %s", len(bad), cfg.folder,
                         "; ".join(bad))
    if not good:
      raise UserError(f"no readable images in folder ({len(bad)} unreadable): {cfg.folder}")
    return good

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    names = self._usable_files()
    alignments = read_alignments(cfg.folder)
    train, test = split_files(names, cfg.test_fraction)
    splits = {"train": self._generate_examples(train, alignments)}
    if test:
      splits["test"] = self._generate_examples(test, alignments)
    return splits

  def _generate_examples(self, names, alignments):
    cfg = self.builder_config
    for name in names:
      image = video.read_image(os.path.join(cfg.folder, name))
      h, w = image.shape[:2]
      lm = alignments.get(name)
      if lm is None:
        landmarks = np.zeros((common.NUM_LANDMARKS, 2), np.float32)
      else:
        landmarks = common.crop_landmarks(lm, w, h)
      yield name, {
          "image": common.encode_image(common.square_resize(image, cfg.size), cfg.encoding),
          "landmarks": landmarks,
          "has_landmarks": lm is not None,
          "file": name.encode("utf-8"),
      }


def face_folder_config(folder: str, size: int = 64, test_fraction: float = 0.1,
                       encoding: str = "png") -> FaceFoldersConfig:
  """The config for `folder` (name = folder slug + size + content fingerprint)."""
  if not str(os.fspath(folder)).strip():
    raise UserError("empty folder path")
  folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
  video.list_images(folder)  # UserError for a missing folder.
  if not 0 <= test_fraction < 1:
    raise UserError(f"test_fraction must be in [0, 1), got {test_fraction}")
  if size < 4:
    raise UserError(f"image size must be at least 4, got {size}")
  fp = common.fingerprint(folder, folder_fingerprint(folder), size, test_fraction, encoding)
  name = f"{common.slug(os.path.basename(folder))}_{size}_{fp}"
  return FaceFoldersConfig(name=name, folder=folder, size=int(size),
                           test_fraction=float(test_fraction), encoding=encoding,
                           description=f"{folder} at {size}x{size}")


def prepare_face_folder(folder: str, size: int = 64, data_dir: str | None = None,
                        test_fraction: float = 0.1, encoding: str = "png") -> FaceFolders:
  """Builds the ArrayRecord dataset of `folder` unless already built; returns the builder.

  Read it with `builder.as_data_source("train")` (or "test" when
  `"test" in builder.info.splits`). Records: dicts with `image` uint8 (size, size, 3),
  `landmarks` float32 (68, 2), `has_landmarks` bool, `file` bytes.

  Raises:
    UserError: missing folder, no usable images, bad alignments.json, bad options.
  """
  cfg = face_folder_config(folder, size, test_fraction, encoding)
  builder = FaceFolders(config=cfg, data_dir=common.resolve_data_dir(data_dir),
                        file_format="array_record")
  return common.prepare(builder)
