"""TFDS builder `detection`: labelled real and fake face crops for deepfake detection.

Input: crop folders, each tagged with its generator: `real` for real faces, or the
name of the model that made the fakes (`ae`, `vae`, `gan`, `fomm`, ...). A crop
folder is what `deepjax extract` writes from videos or photos (crops + an
`alignments.json` whose `faces` entries carry `file`, `source`, `frame` and
`landmarks` (68, 2) in [-1, 1]); runs that generate fakes write the same layout.
Optional per-face keys: `identity` (whose face it is; default: the source clip),
`generator` (overrides the folder's tag). A manipulation mask for a crop is read
from `masks/<file>` (grayscale, 255 = manipulated, e.g. where a swap pasted);
without one the mask is all 0 for real crops and all 255 for fakes (an animation
changes the whole crop). Without `alignments.json` every image of the folder is a
crop of one identity named after the folder, without landmarks.

Splits are by identity, never by frame: an identity goes to `test` when it is named
in `test_identities`, else when `name_fraction(identity) < test_fraction`
(deterministic; with two or more identities neither split is empty). Identities named
in `val_identities` are taken out of training into a `validation` split (for choosing
a checkpoint without looking at the test people). The clip of a
crop is the file stem of its `source` (the folder name when there is none).

Features: `image` uint8 (size, size, 3), `landmarks` float32 (68, 2),
`has_landmarks` bool, `mask` uint8 (size, size, 1), `label` int64 (0 real, 1 fake),
`generator`, `clip`, `identity`, `file` (bytes), `frame` int64 (-1 when unknown).
"""
import dataclasses
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from deepjax.data import images, video
from deepjax.data.builders import common, face_folders
from deepjax.errors import UserError
from deepjax.io_utils import write_text_atomic

REAL = "real"
MASKS_DIR = "masks"


@dataclasses.dataclass
class DetectionConfig(tfds.core.BuilderConfig):
  """folders: ((generator, path), ...); size; identity split (see module docstring)."""
  folders: tuple[tuple[str, str], ...] = ()
  size: int = 64
  test_fraction: float = 0.2
  test_identities: tuple[str, ...] = ()
  encoding: str = "png"
  val_identities: tuple[str, ...] = ()


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(str(path)))[0]


def folder_faces(folder: str, generator: str) -> list[dict]:
  """The crops of one folder: dicts with file, landmarks (or None), clip, identity,
  generator, frame. Entries naming missing files are dropped."""
  align_path = os.path.join(folder, face_folders.ALIGNMENTS_FILE)
  name = os.path.basename(os.path.normpath(folder))
  if not os.path.exists(align_path):
    return [{"file": os.path.basename(p), "landmarks": None, "clip": name, "identity": name,
             "generator": generator, "frame": -1} for p in video.list_images(folder)]
  try:
    with open(align_path, encoding="utf-8") as f:
      entries = json.load(f)["faces"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"bad {align_path} ({type(e).__name__}: {e})") from None
  out, seen = [], set()
  for e in entries:
    if not isinstance(e, dict):
      continue
    file = os.path.basename(str(e.get("file", "")))
    if not file or file in seen or not os.path.isfile(os.path.join(folder, file)):
      continue
    seen.add(file)
    clip = _stem(e["source"]) if e.get("source") else name
    lm = np.asarray(e.get("landmarks", ()), np.float32)
    ok = lm.shape == (common.NUM_LANDMARKS, 2) and bool(np.all(np.isfinite(lm)))
    out.append({"file": file, "landmarks": lm if ok else None, "clip": clip,
                "identity": str(e.get("identity") or clip),
                "generator": str(e.get("generator") or generator),
                "frame": int(e.get("frame", -1))})
  return out


def split_identities(identities: list[str], test_fraction: float,
                     test_identities: tuple[str, ...]) -> tuple[set[str], set[str]]:
  """(train, test) identity sets: the named ones, else by name hash. Naming every
  identity gives an empty train set (folders to evaluate a detector on, not to train)."""
  names = sorted(set(identities))
  if test_identities:
    missing = sorted(set(test_identities) - set(names))
    if missing:
      raise UserError(f"test identities not found: {', '.join(missing)}")
    test = set(test_identities)
    return set(names) - test, test
  train, test = face_folders.split_files(names, test_fraction)
  return set(train), set(test)


class Detection(common.LocalBuilder):
  """Labelled face crops of real and generated faces (see module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  on_example = None  # optional callable, called after each example is made (progress)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    text = tfds.features.Tensor(shape=(), dtype=np.object_)
    return tfds.core.DatasetInfo(
        builder=self,
        description="Real and fake face crops with labels, generators and masks.",
        features=common.face_features(
            cfg.size, cfg.encoding,
            mask=tfds.features.Image(shape=(cfg.size, cfg.size, 1), encoding_format="png"),
            label=tfds.features.Tensor(shape=(), dtype=np.int64),
            frame=tfds.features.Tensor(shape=(), dtype=np.int64),
            generator=text, clip=text, identity=text, file=text),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    return {split: self._generate_examples(faces) for split, faces in
            plan_splits(cfg.folders, cfg.test_fraction, cfg.test_identities,
                        cfg.val_identities).items()}

  def _mask(self, face: dict, fake: bool, shape) -> bytes:
    """PNG of the crop's mask (grayscale, size x size): masks/<file>, else all 0 / 255."""
    path = os.path.join(face["folder"], MASKS_DIR, face["file"])
    if os.path.isfile(path):
      m = video.read_image(path)[..., 0]
      h, w = m.shape
      if (h, w) != tuple(shape):
        raise UserError(f"mask {path} is {w}x{h}, its crop {shape[1]}x{shape[0]}")
    else:
      m = np.full(shape, 255 if fake else 0, np.uint8)
    return common.encode_image(common.square_resize(m, self.builder_config.size))

  def _generate_examples(self, faces):
    cfg = self.builder_config
    for face in faces:
      image = video.read_image(os.path.join(face["folder"], face["file"]))
      h, w = image.shape[:2]
      fake = face["generator"] != REAL
      lm = face["landmarks"]
      yield f"{face['folder_index']}/{face['file']}", {
          "image": common.encode_image(common.square_resize(image, cfg.size), cfg.encoding),
          "landmarks": (np.zeros((common.NUM_LANDMARKS, 2), np.float32) if lm is None
                        else common.crop_landmarks(lm, w, h)),
          "has_landmarks": lm is not None,
          "mask": self._mask(face, fake, (h, w)),
          "label": int(fake), "frame": face["frame"],
          "generator": face["generator"].encode(), "clip": face["clip"].encode(),
          "identity": face["identity"].encode(), "file": face["file"].encode(),
      }
      if self.on_example is not None:
        self.on_example()


def plan_splits(folders, test_fraction: float, test_identities=(),
                val_identities=()) -> dict[str, list[dict]]:
  """{"train": faces, "validation": faces, "test": faces} of the
  (generator, folder) pairs: every crop (`folder_faces`, plus its folder and index), split
  by identity (`split_identities`; `val_identities` moved from train to validation); a
  split without faces is left out.

  Raises: UserError when the folders hold no crops, a test or validation identity is
  unknown, or an identity is named for both.
  """
  faces = []
  for index, (generator, folder) in enumerate(folders):
    for face in folder_faces(folder, generator):
      faces.append(dict(face, folder=folder, folder_index=index))
  if not faces:
    raise UserError("no face crops in the detection folders: " + ", ".join(f for _, f in folders))
  identities = [f["identity"] for f in faces]
  train, test = split_identities(identities, test_fraction, test_identities)
  val = set(val_identities)
  if val - set(identities):
    raise UserError(f"validation identities not found: {', '.join(sorted(val - set(identities)))}")
  if val & test:
    raise UserError(f"identities named for both validation and test: {', '.join(sorted(val & test))}")
  splits = {"train": [f for f in faces if f["identity"] in train - val],
            "validation": [f for f in faces if f["identity"] in val],
            "test": [f for f in faces if f["identity"] in test]}
  return {name: split for name, split in splits.items() if split}


def _folder_state(folder: str) -> str:
  parts = [face_folders.folder_fingerprint(folder)]
  masks = os.path.join(folder, MASKS_DIR)
  if os.path.isdir(masks):
    parts.append(face_folders.folder_fingerprint(masks))
  return common.fingerprint(*parts)


def detection_config(folders, size: int = 64, test_fraction: float = 0.2,
                     test_identities=(), encoding: str = "png",
                     val_identities=()) -> DetectionConfig:
  """The config of `folders` ((generator, path) pairs); its name fingerprints them."""
  pairs = []
  for generator, folder in folders:
    generator = str(generator).strip()
    if not generator or not str(folder).strip():
      raise UserError(f"a detection folder needs a generator and a path, got "
                      f"{generator!r}:{folder!r}")
    folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
    video.list_images(folder)  # UserError for a missing folder.
    pairs.append((generator, folder))
  if not pairs:
    raise UserError("no detection folders given")
  if not 0 <= test_fraction < 1 or size < 4:
    raise UserError(f"need 0 <= test_fraction < 1 and size >= 4, got {test_fraction}, {size}")
  test_identities = tuple(sorted(str(i) for i in test_identities))
  val_identities = tuple(sorted(str(i) for i in val_identities))
  # (a validation split enters the fingerprint only when there is one: earlier names stay)
  fp = common.fingerprint(pairs, [_folder_state(f) for _, f in pairs], size, test_fraction,
                          test_identities, encoding, *((val_identities,) if val_identities else ()))
  return DetectionConfig(name=f"detection_{size}_{fp}", folders=tuple(pairs), size=int(size),
                         test_fraction=float(test_fraction), test_identities=test_identities,
                         encoding=encoding, val_identities=val_identities,
                         description=f"{len(pairs)} folders at {size} px")


def prepare_detection(folders, size: int = 64, data_dir: str | None = None,
                      test_fraction: float = 0.2, test_identities=(),
                      encoding: str = "png", on_example=None, val_identities=()) -> Detection:
  """Builds the detection dataset of `folders` unless already built; returns the builder.

  `on_example`: optional callable, called once per example written (a progress bar).

  Raises:
    UserError: a missing folder, no crops, unknown test identities, bad options.
  """
  cfg = detection_config(folders, size, test_fraction, test_identities, encoding,
                         val_identities)
  builder = Detection(config=cfg, data_dir=common.resolve_data_dir(data_dir),
                      file_format="array_record")
  builder.on_example = on_example
  return common.prepare(builder)


def write_synthetic_folder(folder: str, identity_seeds, frames: int, size: int = 64,
                           motion_seed: int = 0) -> str:
  """Writes real-labelled synthetic crops (`deepjax.data.synthetic`, exact landmarks) in
  the extractor's layout: `<id>_<frame>.png` + alignments.json with source
  `synthetic_<seed>` (one clip and identity per seed). Returns `folder`."""
  from deepjax.data import synthetic  # pylint: disable=import-outside-toplevel
  os.makedirs(folder, exist_ok=True)
  faces = []
  for n, seed in enumerate(identity_seeds):
    motion = synthetic.sample_motion(motion_seed * 100003 + n, frames)
    imgs, lms = synthetic.render(synthetic.sample_identity(int(seed)), motion, size)
    for i, (img, lm) in enumerate(zip(imgs, lms)):
      file = f"synthetic_{seed}_{i:05d}.png"
      images.write_image(os.path.join(folder, file),
                         np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
      faces.append({"file": file, "source": f"synthetic_{seed}", "frame": i,
                    "landmarks": np.asarray(lm, float).tolist()})
  write_text_atomic(os.path.join(folder, face_folders.ALIGNMENTS_FILE),
                    json.dumps({"version": 1, "faces": faces}))
  return folder
