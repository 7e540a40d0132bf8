"""TFDS builder `talking_heads`: a folder of videos, one record per kept frame.

Training the motion model (first-order motion) needs pairs of frames of one video
(source and driving); the pipeline forms the pairs (`deepjax.data.pipeline.pair_iterator`),
this builder stores the frames.

Input: video files directly inside `folder` (`video.VIDEO_EXTENSIONS`, any case).
Each kept frame (every `frame_step`-th, at most `max_frames` per video, 0 = all) is
centre-cropped to a square (aspect kept) and resized to `size` x `size`.
Unreadable videos are skipped with one warning; a folder without a usable video is
a `UserError`. A video that fails part-way keeps the frames decoded before the error.

Splits by video: `test` holds the videos named in `test_videos` (file names or
stems), or else those with `name_fraction(file name) < test_fraction`
(deterministic; at least one video each side when there are two or more).

Records are stored in order (video-major, then frame; TFDS shuffling disabled), so
`common.video_offsets(builder, split)` gives each video's first record index and count
without reading the data (also stored in the dataset metadata).

Features: `image` uint8 (size, size, 3) (PNG or JPEG), `video` int64 (id within the
split), `frame` int64 (index among the decoded frames of the file), `name` bytes.
"""
import dataclasses
import os

import numpy as np
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


def list_videos(folder: str) -> list[str]:
  """Video files directly inside `folder`, sorted (UserError for a missing folder)."""
  video.list_images(folder)  # same folder checks.
  names = sorted(n for n in os.listdir(folder)
                 if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))
                 and os.path.splitext(n)[1].lower() in video.VIDEO_EXTENSIONS)
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

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    if cfg.encoding not in ("png", "jpeg"):
      raise UserError(f"image encoding must be 'png' or 'jpeg', got '{cfg.encoding}'")
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Frames of the videos in {cfg.folder}.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(cfg.size, cfg.size, 3),
                                         encoding_format=cfg.encoding),
            "video": tfds.features.Tensor(shape=(), dtype=np.int64),
            "frame": tfds.features.Tensor(shape=(), dtype=np.int64),
            "name": tfds.features.Tensor(shape=(), dtype=np.object_),
        }),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _usable_videos(self) -> list[str]:
    cfg = self.builder_config
    paths = list_videos(cfg.folder)
    if not paths:
      raise UserError(f"no video files in folder: {cfg.folder}")
    good, bad = [], []
    for p in paths:
      try:
        video._check_video(p)  # pylint: disable=protected-access
        good.append(os.path.basename(p))
      except UserError as e:
        bad.append(f"{os.path.basename(p)} ({e})")
    if bad:
      common.log.warning("skipped %d unreadable video(s) in %s: %s", len(bad), cfg.folder,
                         "; ".join(bad))
    if not good:
      raise UserError(f"no readable videos in folder ({len(bad)} unreadable): {cfg.folder}")
    return good

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    train, test = split_videos(self._usable_videos(), cfg.test_fraction, cfg.test_videos)
    splits = {"train": self._generate_examples("train", train)}
    if test:
      splits["test"] = self._generate_examples("test", test)
    return splits

  def _frames(self, path: str):
    """(frame index, uint8 frame) of the kept frames; stops quietly at a decode error."""
    cfg = self.builder_config
    kept = 0
    try:
      for i, frame in enumerate(video.iter_video(path)):
        if i % cfg.frame_step:
          continue
        yield i, frame
        kept += 1
        if cfg.max_frames and kept >= cfg.max_frames:
          return
    except UserError as e:
      common.log.warning("video %s: kept %d frame(s) before an error: %s", path, kept, e)

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
  folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
  paths = list_videos(folder)
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
