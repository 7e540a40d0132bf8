"""TFDS builder `talking_heads`: a folder of videos, one record per kept frame.

Training the motion model (first-order motion) needs pairs of frames of one video
(source and driving); `deepjax.data.motion_pipeline.pair_iterator` forms the pairs,
this builder stores the frames.

Input: clips directly inside `folder`: video files (`video.VIDEO_EXTENSIONS`, any
case) or sub-folders of frame images (sorted by name; VoxCeleb-style PNG folders).
Each kept frame (every `frame_step`-th, at most `max_frames` per clip, 0 = all) is
centre-cropped to a square (aspect kept) and resized to `size` x `size`.
Unreadable videos (and frames of frame folders) are skipped with a warning; a folder
without a usable clip is a `UserError`. A video that fails part-way keeps the frames
decoded before the error. A frame folder's fingerprint is its own mtime (adding or
removing frames re-prepares; editing a frame in place does not).

With `folder/train` and `folder/test` sub-folders (first-order-model's layout) the
split is taken from them; otherwise splits are by video: `test` holds the videos
named in `test_videos` (file names or stems), or else those with
`name_fraction(file name) < test_fraction` (deterministic; at least one video each
side when there are two or more).

Records are stored in order (video-major, then frame; TFDS shuffling disabled), so
`common.video_offsets(builder, split)` gives each video's first record index and count
without reading the data (also stored in the dataset metadata).

Features: `image` uint8 (size, size, 3) (PNG or JPEG), `video` int64 (id within the
split), `frame` int64 (index among the decoded frames of the file), `name` bytes.
"""
import dataclasses
import os

import numpy as np
from absl import logging
import tensorflow_datasets as tfds

from deepjax.data import video
from deepjax.data.builders import common
from deepjax.data.builders import face_folders
from deepjax.errors import UserError



@dataclasses.dataclass
class TalkingHeadsConfig(tfds.core.BuilderConfig):
  """folder, size, frame sampling and the video split (see module docstring)."""
  folder: str = ""
  size: int = 64
  frame_step: int = 1
  max_frames: int = 0
  test_fraction: float = 0.1
  test_videos: tuple[str, ...] = ()
  encoding: str = "jpeg"


def _is_frame_folder(path: str) -> bool:
  return os.path.isdir(path) and bool(video.list_images(path))


def list_clips(folder: str) -> list[str]:
  """Clips directly inside `folder`, sorted names relative to it.

  A clip is a video file (`video.VIDEO_EXTENSIONS`) or a sub-folder holding image
  frames (sorted by name). Raises UserError for a missing folder.
  """
  video.list_images(folder)  # same folder checks.
  names = []
  for n in sorted(os.listdir(folder)):
    path = os.path.join(folder, n)
    if n.startswith("."):
      continue
    if os.path.isfile(path) and os.path.splitext(n)[1].lower() in video.VIDEO_EXTENSIONS:
      names.append(n)
    elif _is_frame_folder(path):
      names.append(n)
  return names


def list_split_clips(folder: str) -> dict[str, list[str]]:
  """{"train": [...], "test": [...]} for the `folder/train`, `folder/test` layout
  (first-order-model's), names relative to `folder`; {} for a flat folder."""
  if not all(os.path.isdir(os.path.join(folder, s)) for s in ("train", "test")):
    return {}
  out = {s: [f"{s}/{n}" for n in list_clips(os.path.join(folder, s))] for s in ("train", "test")}
  return out if out["train"] else {}


def list_videos(folder: str) -> list[str]:
  """Paths of the clips of `folder` (both layouts)."""
  split = list_split_clips(folder)
  names = split["train"] + split["test"] if split else list_clips(folder)
  return [os.path.join(folder, n) for n in names]


def split_videos(names: list[str], test_fraction: float,
                 test_videos: tuple[str, ...]) -> tuple[list[str], list[str]]:
  """(train, test) video file names: the named held-out list, else by name hash."""
  if test_videos:
    wanted = set(test_videos)
    test = [n for n in names if n in wanted or os.path.splitext(n)[0] in wanted]
    found = set(test) | {os.path.splitext(n)[0] for n in test}
    missing = sorted(wanted - found)
    if missing:
      raise UserError(f"test videos not found among usable videos: {', '.join(missing)}")
    train = [n for n in names if n not in test]
    if not train:
      raise UserError("every video is a test video: no training videos left")
    return train, test
  return face_folders.split_files(names, test_fraction)


class TalkingHeads(common.LocalBuilder):
  """Frames of a folder of talking-head videos (see module docstring)."""

  VIDEO_MAJOR = True

  def _description(self) -> str:
    return f"Frames of the videos in {self.builder_config.folder}."

  def _features(self) -> tfds.features.FeaturesDict:
    cfg = self.builder_config
    if cfg.encoding not in ("png", "jpeg"):
      raise UserError(f"image encoding must be 'png' or 'jpeg', got '{cfg.encoding}'")
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(cfg.size, cfg.size, 3),
                                     encoding_format=cfg.encoding),
        "video": tfds.features.Tensor(shape=(), dtype=np.int64),
        "frame": tfds.features.Tensor(shape=(), dtype=np.int64),
        "name": tfds.features.Tensor(shape=(), dtype=np.object_),
    })

  def _usable(self, names: list[str]) -> list[str]:
    """The clips that open (frame folders always do); warns about the others."""
    cfg = self.builder_config
    good, bad = [], []
    for n in names:
      path = os.path.join(cfg.folder, n)
      try:
        if not os.path.isdir(path):
          video.check_video(path)
        good.append(n)
      except UserError as e:
        bad.append(f"{n} ({e})")
    if bad:
      logging.warning("skipped %d unreadable video(s) in %s: %s", len(bad), cfg.folder,
                         "; ".join(bad))
    return good

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    layout = list_split_clips(cfg.folder)
    if layout:  # folder/train and folder/test: the split is given.
      train, test = self._usable(layout["train"]), self._usable(layout["test"])
      if not train:
        raise UserError(f"no readable videos in {os.path.join(cfg.folder, 'train')}")
    else:
      names = list_clips(cfg.folder)
      if not names:
        raise UserError(f"no video files or frame folders in folder: {cfg.folder}")
      usable = self._usable(names)
      if not usable:
        raise UserError(f"no readable videos in folder ({len(names)} unreadable): "
                        f"{cfg.folder}")
      train, test = split_videos(usable, cfg.test_fraction, cfg.test_videos)
    splits = {"train": self._generate_examples("train", train)}
    if test:
      splits["test"] = self._generate_examples("test", test)
    return splits

  def _decoded(self, path: str):
    """(index, uint8 frame) of every frame of a video file or frame folder."""
    if not os.path.isdir(path):
      yield from enumerate(video.iter_video(path))
      return
    bad = []
    for i, p in enumerate(video.list_images(path)):
      try:
        yield i, video.read_image(p)
      except UserError:
        bad.append(os.path.basename(p))
    if bad:
      logging.warning("frame folder %s: skipped %d unreadable frame(s): %s", path, len(bad),
                         ", ".join(bad[:10]))

  def _frames(self, path: str):
    """(frame index, uint8 frame) of the kept frames; stops quietly at a decode error."""
    cfg = self.builder_config
    kept = 0
    try:
      for i, frame in self._decoded(path):
        if i % cfg.frame_step:
          continue
        yield i, frame
        kept += 1
        if cfg.max_frames and kept >= cfg.max_frames:
          return
    except UserError as e:
      logging.warning("video %s: kept %d frame(s) before an error: %s", path, kept, e)

  def _generate_examples(self, split, names):
    cfg = self.builder_config
    videos, counts = [], []
    for name in names:
      vid = len(videos)
      n = 0
      for i, frame in self._frames(os.path.join(cfg.folder, name)):
        yield common.video_key(vid, n), {
            "image": common.encode_image(common.square_resize(frame, cfg.size), cfg.encoding),
            "video": vid, "frame": i, "name": name.encode("utf-8")}
        n += 1
      if n:
        videos.append(name)
        counts.append(n)
    common.set_video_counts(self, split, videos, counts)


video_offsets = common.video_offsets


def talking_heads_config(folder: str, size: int = 64, frame_step: int = 1,
                         max_frames: int = 0, test_fraction: float = 0.1,
                         test_videos=(), encoding: str = "jpeg") -> TalkingHeadsConfig:
  """The config of `folder` (name = slug + size + content/options fingerprint)."""
  if not str(os.fspath(folder)).strip():
    raise UserError("empty folder path")
  folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
  paths = list_videos(folder)  # frame folders: the folder's own mtime (files added/removed).
  if size < 4 or frame_step < 1 or max_frames < 0:
    raise UserError(f"need size >= 4, frame_step >= 1, max_frames >= 0; got {size}, "
                    f"{frame_step}, {max_frames}")
  if not 0 <= test_fraction < 1:
    raise UserError(f"test_fraction must be in [0, 1), got {test_fraction}")
  stats = [(os.path.basename(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
  test_videos = tuple(sorted(str(v) for v in test_videos))
  fp = common.fingerprint(folder, stats, size, frame_step, max_frames, test_fraction,
                          test_videos, encoding)
  return TalkingHeadsConfig(
      name=f"{common.slug(os.path.basename(folder))}_{size}_{fp}", folder=folder,
      size=int(size), frame_step=int(frame_step), max_frames=int(max_frames),
      test_fraction=float(test_fraction), test_videos=test_videos, encoding=encoding,
      description=f"{folder} at {size}x{size}")


def prepare_talking_heads(folder: str, size: int = 64, data_dir: str | None = None,
                          frame_step: int = 1, max_frames: int = 0,
                          test_fraction: float = 0.1, test_videos=(),
                          encoding: str = "jpeg") -> TalkingHeads:
  """Builds the frames dataset of a video folder unless already built; returns the builder.

  Raises:
    UserError: missing folder, no usable video, unknown `test_videos`, bad options.
  """
  cfg = talking_heads_config(folder, size, frame_step, max_frames, test_fraction,
                             test_videos, encoding)
  builder = TalkingHeads(config=cfg, data_dir=common.resolve_data_dir(data_dir),
                         file_format="array_record")
  return common.prepare(builder)
