"""TFDS builder `synthetic_faces`: frames of one procedural identity with exact truth.

Frames come from `deepjax.data.synthetic` (docs/CONTRACTS.md):
`render(sample_identity(identity_seed), sample_motion(motion_seed, n), size)`.
`train` and `test` use different motion seeds, so test poses/expressions are unseen.

Features per record:
  image: uint8 (size, size, 3), stored as PNG (lossless: the rendered frame rounded
    to 8 bits, `round(clip(x, 0, 1) * 255)`).
  landmarks: float32 (68, 2) in [-1, 1]; has_landmarks: True.
  identity: int64, the identity seed.
  index: int64, the frame's index in its split's motion batch.
  one float32 feature per motion field (named as `sample_motion` names them), so the
    exact frame, or the swap ground truth `render(other_identity, motion, size)`,
    can be re-rendered from a record.

The config name includes a hash of `deepjax/data/synthetic.py`'s source, so a
changed renderer prepares fresh data instead of reusing stale frames.
"""
import dataclasses
import hashlib
import importlib
import inspect

import numpy as np
import tensorflow_datasets as tfds

from deepjax.data.builders import common
from deepjax.errors import UserError

_RENDER_CHUNK = 256  # frames per render call (render chunks further by pixels).


def _synthetic():
  """The `deepjax.data.synthetic` module (imported on use)."""
  return importlib.import_module("deepjax.data.synthetic")


def renderer_fingerprint() -> str:
  """Hash of the synthetic module's source (changes when the renderer changes)."""
  mod = _synthetic()
  try:
    src = inspect.getsource(mod)
  except (OSError, TypeError):
    src = repr(getattr(mod, "__version__", mod.__name__))
  return hashlib.sha256(src.encode("utf-8")).hexdigest()[:8]


def default_split_seeds(identity_seed: int) -> tuple[int, int]:
  """Motion seeds (train, test) derived from the identity seed, distinct per identity."""
  ss = np.random.SeedSequence([int(identity_seed), 0x5EED])
  a, b = ss.generate_state(2)
  return int(a), int(b)


def _features(size: int, int_fields) -> tfds.features.FeaturesDict:
  """`common.face_features` (PNG) + int64 scalars `int_fields` + one float32 feature per
  motion field of `sample_motion`."""
  sample = _synthetic().sample_motion(0, 1)
  motion = {k: tfds.features.Tensor(shape=tuple(np.shape(v)[1:]), dtype=np.float32)
            for k, v in sorted(sample.items())}
  reserved = {"image", "landmarks", "has_landmarks", *int_fields} & set(motion)
  if reserved:
    raise ValueError(f"motion fields clash with feature names: {sorted(reserved)}")
  ints = {k: tfds.features.Tensor(shape=(), dtype=np.int64) for k in int_fields}
  return common.face_features(size, "png", **ints, **motion)


def _rendered(identity, motion, size: int):
  """Renders `motion` (fields of leading n) of `identity` in chunks; yields (i, record
  fields image (PNG bytes), landmarks, has_landmarks and the frame's motion fields)."""
  syn = _synthetic()
  num = len(next(iter(motion.values())))
  for start in range(0, num, _RENDER_CHUNK):
    stop = min(num, start + _RENDER_CHUNK)
    chunk = {k: v[start:stop] for k, v in motion.items()}
    images, landmarks = syn.render(identity, chunk, size)
    images = np.round(np.clip(np.asarray(images, np.float32), 0, 1) * 255).astype(np.uint8)
    landmarks = np.asarray(landmarks, np.float32)
    for j in range(stop - start):
      yield start + j, {"image": common.encode_image(images[j]), "landmarks": landmarks[j],
                        "has_landmarks": True, **{k: v[j] for k, v in chunk.items()}}


@dataclasses.dataclass
class SyntheticFacesConfig(tfds.core.BuilderConfig):
  """identity_seed; frames per split; size; motion seeds (train, test)."""
  identity_seed: int = 0
  num_train: int = 256
  num_test: int = 32
  size: int = 64
  train_motion_seed: int = 1
  test_motion_seed: int = 2


class SyntheticFaces(common.LocalBuilder):
  """Rendered frames of one synthetic identity (see module docstring)."""

  def _description(self) -> str:
    cfg = self.builder_config
    return f"Synthetic identity {cfg.identity_seed} at {cfg.size}x{cfg.size}."

  def _features(self) -> tfds.features.FeaturesDict:
    return _features(self.builder_config.size, ("identity", "index"))

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    splits = {"train": self._generate_examples(cfg.train_motion_seed, cfg.num_train)}
    if cfg.num_test > 0:
      splits["test"] = self._generate_examples(cfg.test_motion_seed, cfg.num_test)
    return splits

  def _generate_examples(self, motion_seed, num):
    cfg = self.builder_config
    syn = _synthetic()
    identity = syn.sample_identity(cfg.identity_seed)
    motion = {k: np.asarray(v, np.float32)
              for k, v in syn.sample_motion(motion_seed, num).items()}
    for i, frame in _rendered(identity, motion, cfg.size):
      yield i, dict(frame, identity=int(cfg.identity_seed), index=i)


def synthetic_config(identity_seed: int, num_train: int, size: int = 64,
                     num_test: int = 0, split_seeds=None) -> SyntheticFacesConfig:
  """The config (name carries every option and the renderer's source hash)."""
  if num_train < 1 or num_test < 0:
    raise UserError(f"need num_train >= 1 and num_test >= 0, got {num_train}, {num_test}")
  if size < 4:
    raise UserError(f"image size must be at least 4, got {size}")
  train_seed, test_seed = split_seeds or default_split_seeds(identity_seed)
  if num_test and train_seed == test_seed:
    raise UserError("train and test motion seeds must differ")
  fp = common.fingerprint(renderer_fingerprint(), identity_seed, num_train, num_test, size,
                          train_seed, test_seed)
  return SyntheticFacesConfig(
      name=f"id{int(identity_seed)}_{size}_{num_train}_{num_test}_{fp}",
      identity_seed=int(identity_seed), num_train=int(num_train), num_test=int(num_test),
      size=int(size), train_motion_seed=int(train_seed), test_motion_seed=int(test_seed),
      description=f"identity {identity_seed}, {num_train}+{num_test} frames at {size}px")


def prepare_synthetic(identity_seed: int, num_train: int, size: int = 64,
                      data_dir: str | None = None, num_test: int = 0,
                      split_seeds: tuple[int, int] | None = None) -> SyntheticFaces:
  """Renders and stores one identity's frames unless already stored; returns the builder.

  Args:
    identity_seed: `sample_identity` seed (also stored as `identity`).
    num_train, num_test: frames in the `train` / `test` splits (no `test` split if 0).
    size: image side in pixels.
    data_dir: where TFDS writes (`common.DEFAULT_DATA_DIR` if None).
    split_seeds: (train, test) `sample_motion` seeds; by default derived from
      `identity_seed` (`default_split_seeds`).

  Returns:
    The prepared builder; `builder.as_data_source("train")` gives the records.
  """
  cfg = synthetic_config(identity_seed, num_train, size, num_test, split_seeds)
  builder = SyntheticFaces(config=cfg, data_dir=common.resolve_data_dir(data_dir),
                           file_format="array_record")
  return common.prepare(builder)


# ----------------------------------------------------------------------------- videos


@dataclasses.dataclass
class SyntheticVideosConfig(tfds.core.BuilderConfig):
  """Identity seeds of each split; frames per video; size."""
  train_identities: tuple[int, ...] = (0,)
  test_identities: tuple[int, ...] = ()
  num_frames: int = 64
  size: int = 64


def clip_seed(identity_seed: int) -> int:
  """The `motion_clip` seed of an identity's video."""
  return int(np.random.SeedSequence([int(identity_seed), 0xC11B]).generate_state(1)[0])


class SyntheticVideos(SyntheticFaces):
  """`synthetic_videos`: one smooth clip (`motion_clip`) per synthetic identity.

  For the motion model: pairs of frames of one video share the identity, and the
  test split holds other identities. Records are video-major (TFDS shuffling off),
  `common.video_offsets` gives each video's records. Features: those of
  `synthetic_faces` plus `video` int64 (index in the split) and `frame` int64.
  """

  VIDEO_MAJOR = True

  def _description(self) -> str:
    cfg = self.builder_config
    return f"Synthetic talking-head clips at {cfg.size}x{cfg.size}."

  def _features(self) -> tfds.features.FeaturesDict:
    return _features(self.builder_config.size, ("identity", "video", "frame"))

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    splits = {"train": self._generate_examples("train", cfg.train_identities)}
    if cfg.test_identities:
      splits["test"] = self._generate_examples("test", cfg.test_identities)
    return splits

  def _generate_examples(self, split, identity_seeds):  # pylint: disable=arguments-renamed
    cfg = self.builder_config
    syn = _synthetic()
    for vid, seed in enumerate(identity_seeds):
      identity = syn.sample_identity(seed)
      motion = {k: np.asarray(v, np.float32)
                for k, v in syn.motion_clip(clip_seed(seed), cfg.num_frames).items()}
      for i, frame in _rendered(identity, motion, cfg.size):
        yield common.video_key(vid, i), dict(frame, identity=int(seed), video=vid, frame=i)
    common.set_video_counts(self, split, [f"identity_{s}" for s in identity_seeds],
                            [cfg.num_frames] * len(identity_seeds))


def prepare_synthetic_videos(train_identities, test_identities=(), num_frames: int = 64,
                             size: int = 64, data_dir: str | None = None) -> SyntheticVideos:
  """Renders one clip per identity seed (train and test splits); returns the builder.

  Raises:
    UserError: no train identities, an identity in both splits, bad sizes.
  """
  train = tuple(int(s) for s in train_identities)
  test = tuple(int(s) for s in test_identities)
  if not train or num_frames < 2 or size < 4:
    raise UserError(f"need train identities, num_frames >= 2, size >= 4; got {len(train)}, "
                    f"{num_frames}, {size}")
  if set(train) & set(test):
    raise UserError(f"identities in both splits: {sorted(set(train) & set(test))}")
  fp = common.fingerprint(renderer_fingerprint(), train, test, num_frames, size)
  cfg = SyntheticVideosConfig(
      name=f"v{len(train)}_{len(test)}_{size}_{num_frames}_{fp}", train_identities=train,
      test_identities=test, num_frames=int(num_frames), size=int(size),
      description=f"{len(train)}+{len(test)} clips of {num_frames} frames at {size}px")
  builder = SyntheticVideos(config=cfg, data_dir=common.resolve_data_dir(data_dir),
                            file_format="array_record")
  return common.prepare(builder)
