"""Video input/output: uint8 RGB frames in, uint8 RGB frames out (images: deepjax.data.images).

Videos are read and written with the ffmpeg executable shipped by imageio-ffmpeg
(nothing is downloaded). `write_video` writes H.264 mp4 of exactly the frames' size:
`yuv420p` (plays everywhere) when width and height are even, `yuv444p` (H.264 High
4:4:4; ffmpeg, VLC and browsers based on ffmpeg play it, some hardware players do not)
when either is odd, since 4:2:0 chroma needs even sizes. With `audio_from`, the audio
stream of that file is copied (not re-encoded when mp4 can hold it) into the output.

Missing, empty, unreadable, non-image/non-video files raise `UserError`.

Images: `deepjax.data.images` (read_image, write_image, list_images are re-exported here).
"""
import contextlib
import dataclasses
import os
import re
import subprocess
import tempfile
import warnings
from typing import Iterable, Iterator, Optional

import imageio_ffmpeg
import numpy as np

from deepjax.data.images import (  # re-exported: video.read_image etc.
    IMAGE_EXTENSIONS, check_file, list_images, read_image, write_image)
from deepjax.errors import UserError
from deepjax.io_utils import atomic_path

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "VideoInfo", "check_file", "check_video",
           "iter_video", "list_images", "probe_video", "read_image", "read_video",
           "spawning_ffmpeg", "write_image", "write_video"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".gif")


# ----------------------------------------------------------------------------- videos


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What `probe_video` finds: frame count (decoded), fps, frame size, audio."""
  num_frames: int
  fps: float
  width: int
  height: int
  has_audio: bool


def _ffmpeg() -> str:
  return imageio_ffmpeg.get_ffmpeg_exe()


@contextlib.contextmanager
def spawning_ffmpeg():
  """Hides JAX's "os.fork() was called ... deadlock" warning while ffmpeg is started.

  Starting a subprocess forks and immediately executes ffmpeg in the child (no Python,
  no JAX runs there), which is safe; JAX's at-fork hook warns for every fork all the
  same. Only this warning, only inside the block.
  """
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                            category=RuntimeWarning)
    yield


def _ffmpeg_streams(path: str) -> str:
  """ffmpeg's stream listing of `path` (its stderr for `ffmpeg -i path`)."""
  with spawning_ffmpeg():
    proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", path],
                          capture_output=True, text=True, errors="replace", timeout=60)
  return proc.stderr


def _has_stream(listing: str, kind: str) -> bool:
  return re.search(rf"Stream #\d+:\d+.*: {kind}:", listing) is not None


def check_video(path: str) -> str:
  """Checks `path` is a readable video; returns ffmpeg's stream listing."""
  check_file(path, "video")
  listing = _ffmpeg_streams(path)
  if not _has_stream(listing, "Video"):
    last = [l.strip() for l in listing.strip().splitlines() if l.strip()]
    why = last[-1] if last else "no video stream"
    if "At least one output file" in why:
      why = "no video stream"
    raise UserError(f"not a readable video ({why}): {path}")
  return listing


def probe_video(path: str) -> VideoInfo:
  """Frame count, fps, size and audio presence of a video file.

  The frame count is exact (ffmpeg decodes the whole stream), so this takes about
  as long as decoding the video once.

  Raises:
    UserError: missing, empty, corrupt or non-video file, or a video of zero frames.
  """
  path = os.fspath(path)
  listing = check_video(path)
  meta, gen = _open_frames(path)
  gen.close()
  try:
    with spawning_ffmpeg():
      num_frames, _ = imageio_ffmpeg.count_frames_and_secs(path)
  except (RuntimeError, OSError, ValueError) as e:
    raise UserError(f"cannot count the frames of video ({e}): {path}") from None
  if num_frames <= 0:
    raise UserError(f"video has no frames: {path}")
  width, height = meta["size"]
  return VideoInfo(num_frames=int(num_frames), fps=float(meta["fps"]), width=int(width),
                   height=int(height), has_audio=_has_stream(listing, "Audio"))


def _open_frames(path: str):
  """Starts ffmpeg decoding `path`; returns (metadata dict, frame-bytes generator)."""
  try:
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    with spawning_ffmpeg():
      meta = next(gen)
  except (RuntimeError, OSError, StopIteration, ValueError) as e:
    msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    raise UserError(f"cannot read video ({msg}): {path}") from None
  if not meta.get("size") or not meta["size"][0] or not meta["size"][1]:
    gen.close()
    raise UserError(f"video has no frame size: {path}")
  return meta, gen


def _frames_of(path: str, meta: dict, gen) -> Iterator[np.ndarray]:
  w, h = meta["size"]
  count = 0
  try:
    for raw in gen:
      if len(raw) != w * h * 3:
        break
      count += 1
      yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()
  except RuntimeError as e:
    msg = str(e).strip().splitlines()[-1] if str(e).strip() else "decoder error"
    raise UserError(f"error while decoding video ({msg}): {path}") from None
  finally:
    gen.close()
  if count == 0:
    raise UserError(f"video has no frames: {path}")


def iter_video(path: str, chunk: Optional[int] = None) -> Iterator[np.ndarray]:
  """Decodes a video lazily.

  Args:
    path: video file.
    chunk: None to yield single frames uint8 (H, W, 3); an integer n to yield
      uint8 (n, H, W, 3) blocks (the last one may be shorter).

  Raises:
    UserError (on the first `next`): missing/corrupt/non-video file or zero frames.
  """
  path = os.fspath(path)
  check_video(path)
  meta, gen = _open_frames(path)
  frames = _frames_of(path, meta, gen)
  if chunk is None:
    yield from frames
    return
  if chunk <= 0:
    raise ValueError(f"chunk must be positive, got {chunk}")
  block = []
  for f in frames:
    block.append(f)
    if len(block) == chunk:
      yield np.stack(block)
      block = []
  if block:
    yield np.stack(block)


def read_video(path: str, max_frames: Optional[int] = None
               ) -> tuple[np.ndarray, float, bool]:
  """Decodes a whole video (or its first `max_frames` frames) into memory.

  Returns:
    frames: uint8 (T, H, W, 3) RGB.
    fps: frames per second (float).
    has_audio: whether the file has an audio stream.

  Raises:
    UserError: missing/corrupt/non-video file or zero frames.
  """
  path = os.fspath(path)
  listing = check_video(path)
  meta, gen = _open_frames(path)
  frames = []
  it = _frames_of(path, meta, gen)
  try:
    for f in it:
      frames.append(f)
      if max_frames is not None and len(frames) >= max_frames:
        break
  finally:
    it.close()
  if not frames:
    raise UserError(f"video has no frames: {path}")
  return np.stack(frames), float(meta["fps"]), _has_stream(listing, "Audio")


def _mux_audio(video_path: str, audio_from: str, out_path: str, duration: float) -> None:
  """Copies the video of `video_path` and the first audio stream of `audio_from`.

  The audio is cut at the video's `duration` (seconds); a shorter audio track leaves
  the video whole (`-shortest` would drop frames).
  """
  base = [_ffmpeg(), "-y", "-nostdin", "-v", "error", "-i", video_path, "-i", audio_from,
          "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
  tail = ["-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", out_path]
  with spawning_ffmpeg():
    proc = subprocess.run(base + ["-c:a", "copy"] + tail, capture_output=True, text=True,
                          errors="replace")
    if proc.returncode != 0:  # mp4 cannot hold this codec as is: re-encode it to AAC.
      proc = subprocess.run(base + ["-c:a", "aac", "-b:a", "192k"] + tail,
                            capture_output=True, text=True, errors="replace")
  if proc.returncode != 0:
    msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "ffmpeg failed"
    raise UserError(f"cannot copy the audio of {audio_from} ({msg})")


def write_video(path: str, frames: Iterable[np.ndarray], fps: float,
                audio_from: Optional[str] = None, quality: float = 7,
                crf: Optional[int] = None) -> int:
  """Encodes frames to an H.264 mp4, atomically, optionally with another file's audio.

  Args:
    path: output file (mp4 container whatever the extension).
    frames: iterable of uint8 (H, W, 3) RGB frames of one size, or an array
      uint8 (T, H, W, 3). Consumed lazily (a generator is never held in memory).
    fps: frames per second (> 0).
    audio_from: optional media file whose first audio stream is copied into the
      output (cut to the video's length); nothing is added if it has no audio.
    quality: 0 (worst) to 10 (best); maps to x264 CRF `int((1 - quality/10) * 51)`.
    crf: x264's constant rate factor (0-51) given directly; overrides `quality`.

  Returns:
    The number of frames written.

  Raises:
    UserError: no frames, bad fps, or a missing `audio_from`.
    ValueError: a frame that is not uint8 (H, W, 3) or differs in size from the first.
  """
  path = os.fspath(path)
  if not fps or fps <= 0:
    raise UserError(f"fps must be positive, got {fps}")
  has_audio = False
  if audio_from is not None:
    audio_from = os.fspath(audio_from)
    check_file(audio_from, "audio source")
    has_audio = _has_stream(_ffmpeg_streams(audio_from), "Audio")
  it = iter(frames)
  first = next(it, None)
  if first is None:
    raise UserError(f"no frames to write to {path}")
  first = np.asarray(first)
  if first.dtype != np.uint8 or first.ndim != 3 or first.shape[-1] != 3:
    raise ValueError(f"frames must be uint8 (H,W,3), got {first.dtype} {first.shape}")
  h, w = first.shape[:2]
  pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) else "yuv444p"
  if crf is not None and not 0 <= int(crf) <= 51:
    raise UserError(f"crf must be in 0..51, got {crf}")
  rate = ["-crf", str(int(crf))] if crf is not None else []

  def encode(target: str) -> int:
    writer = imageio_ffmpeg.write_frames(
        target, (w, h), pix_fmt_in="rgb24", pix_fmt_out=pix_fmt, fps=fps,
        quality=None if crf is not None else quality, codec="libx264", macro_block_size=1,
        output_params=rate + ["-f", "mp4", "-movflags", "+faststart"])
    with spawning_ffmpeg():
      writer.send(None)
    n = 0
    try:
      for f in _chain(first, it):
        f = np.asarray(f)
        if f.dtype != np.uint8 or f.shape != (h, w, 3):
          raise ValueError(f"frame {n} is {f.dtype} {f.shape}, expected uint8 {(h, w, 3)}")
        writer.send(np.ascontiguousarray(f))
        n += 1
    finally:
      writer.close()
    return n

  with atomic_path(path) as tmp:
    if not has_audio:
      return encode(tmp)
    fd, silent = tempfile.mkstemp(prefix=".video.", suffix=".partial.mp4",
                                  dir=os.path.dirname(tmp))
    os.close(fd)
    try:
      n = encode(silent)
      _mux_audio(silent, audio_from, tmp, n / fps)
    finally:
      os.remove(silent)
    return n


def _chain(first, rest):
  yield first
  yield from rest
