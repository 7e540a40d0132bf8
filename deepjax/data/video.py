"""Image and video input/output: uint8 RGB arrays in, uint8 RGB arrays out.

Images are read with Pillow and always come back as `uint8 (H, W, 3)` RGB:

- EXIF orientation is applied (the array is upright as a viewer shows it).
- Grayscale (`1`, `L`, `I;16`, `I`, `F`) is replicated to three channels.
- 16-bit data (`I;16*` modes, 16-bit PNG/TIFF) is scaled to 8 bits by `v / 257`
  (65535 -> 255); 32-bit integer `I` images are clipped to [0, 65535] first, float
  `F` images are taken as [0, 1] when their maximum is <= 1, else as [0, 255].
- Alpha (`RGBA`, `LA`, `PA`, palette with transparency) is composited on black:
  `rgb * alpha / 255`, so transparent pixels are black whatever colour they hide.
- Palette (`P`), `CMYK`, `YCbCr`, `LAB`, `HSV` are converted to RGB by Pillow.
- Multi-frame files (GIF, TIFF) give their first frame.

Videos are read and written with the ffmpeg executable shipped by imageio-ffmpeg
(nothing is downloaded). `write_video` writes H.264 mp4 of exactly the frames' size:
`yuv420p` (plays everywhere) when width and height are even, `yuv444p` (H.264 High
4:4:4; ffmpeg, VLC and browsers based on ffmpeg play it, some hardware players do not)
when either is odd, since 4:2:0 chroma needs even sizes. With `audio_from`, the audio
stream of that file is copied (not re-encoded when mp4 can hold it) into the output.

Missing, empty, unreadable, non-image/non-video files raise `UserError`.
"""
import dataclasses
import os
import re
import subprocess
import tempfile
from typing import Iterable, Iterator, Optional

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepjax.errors import UserError
from deepjax.io_utils import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm", ".tga")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".gif")


# ----------------------------------------------------------------------------- images


def _check_file(path: str, what: str) -> None:
  if not os.path.exists(path):
    raise UserError(f"{what} not found: {path}")
  if not os.path.isfile(path):
    raise UserError(f"{what} is not a file: {path}")
  if os.path.getsize(path) == 0:
    raise UserError(f"{what} is empty (0 bytes): {path}")


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
  """Converts a loaded Pillow image of any mode to uint8 (H, W, 3) RGB."""
  mode = img.mode
  if mode == "P" or mode == "PA":
    img = img.convert("RGBA")
    mode = "RGBA"
  if mode in ("RGBA", "LA", "La", "RGBa"):
    if mode in ("La", "RGBa"):  # premultiplied alpha: already composited on black.
      return np.asarray(img.convert("RGB"), dtype=np.uint8)
    rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
    rgb = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255
    return rgb.astype(np.uint8)
  if mode.startswith("I;16") or mode == "I":
    v = np.asarray(img).astype(np.float64)
    v = np.clip(v, 0, 65535) / 257.0
    g = np.round(v).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
  if mode == "F":
    v = np.asarray(img, dtype=np.float64)
    v = np.nan_to_num(v)
    if v.size and v.max() <= 1.0:
      v = v * 255.0
    g = np.round(np.clip(v, 0, 255)).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
  if mode != "RGB":
    img = img.convert("RGB")
  return np.asarray(img, dtype=np.uint8)


def read_image(path: str) -> np.ndarray:
  """Reads an image file as RGB.

  Args:
    path: image file of any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, GIF...).

  Returns:
    uint8 array (H, W, 3), upright (EXIF orientation applied); see the module
    docstring for how grayscale, alpha, palette, 16-bit and CMYK images are mapped.

  Raises:
    UserError: the file is missing, empty, not an image, truncated/corrupt, or has
      zero width or height.
  """
  path = os.fspath(path)
  _check_file(path, "image")
  try:
    with Image.open(path) as img:
      img.load()
      if img.width == 0 or img.height == 0:
        raise UserError(f"image has zero size ({img.width}x{img.height}): {path}")
      img = ImageOps.exif_transpose(img)
      arr = _to_rgb_uint8(img)
  except UserError:
    raise
  except UnidentifiedImageError:
    raise UserError(f"not an image file (unknown format): {path}") from None
  except Image.DecompressionBombError as e:
    raise UserError(f"image too large to read safely ({e}): {path}") from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise UserError(f"unreadable image ({msg}): {path}") from None
  if arr.shape[0] == 0 or arr.shape[1] == 0:
    raise UserError(f"image has zero size: {path}")
  return np.ascontiguousarray(arr)


def write_image(path: str, image: np.ndarray, quality: int = 95) -> None:
  """Writes an image atomically (temporary file, then rename).

  Args:
    path: output file; the format comes from its extension (.png, .jpg, ...).
    image: uint8 (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grayscale.
    quality: JPEG/WebP quality (1-100); ignored by lossless formats.

  Raises:
    UserError: the extension names no image format Pillow can write.
    ValueError: `image` is not uint8 or has an unsupported shape.
  """
  path = os.fspath(path)
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"write_image expects uint8, got {image.dtype}")
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
    raise ValueError(f"write_image expects (H,W), (H,W,3) or (H,W,4), got {image.shape}")
  ext = os.path.splitext(path)[1].lower()
  fmt = Image.registered_extensions().get(ext)
  if fmt is None or fmt not in Image.SAVE:
    raise UserError(f"cannot write images with extension '{ext}': {path}")
  img = Image.fromarray(np.ascontiguousarray(image))
  kwargs = {}
  if fmt in ("JPEG", "WEBP"):
    kwargs["quality"] = int(quality)
    if img.mode == "RGBA":
      img = img.convert("RGB")
  with atomic_path(path) as tmp:
    img.save(tmp, format=fmt, **kwargs)


def list_images(folder: str) -> list[str]:
  """Image files directly inside `folder` (not recursive), sorted by name.

  Files are selected by extension (`IMAGE_EXTENSIONS`, any case); hidden files
  (leading '.', e.g. partial outputs) are skipped. An empty list is returned for a
  folder without images: the caller decides whether that is an error.

  Raises:
    UserError: `folder` does not exist or is not a folder.
  """
  folder = os.fspath(folder)
  if not os.path.exists(folder):
    raise UserError(f"folder not found: {folder}")
  if not os.path.isdir(folder):
    raise UserError(f"not a folder: {folder}")
  names = sorted(n for n in os.listdir(folder)
                 if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                 and os.path.isfile(os.path.join(folder, n)))
  return [os.path.join(folder, n) for n in names]


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


def _ffmpeg_streams(path: str) -> str:
  """ffmpeg's stream listing of `path` (its stderr for `ffmpeg -i path`)."""
  proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", path],
                        capture_output=True, text=True, errors="replace", timeout=60)
  return proc.stderr


def _has_stream(listing: str, kind: str) -> bool:
  return re.search(rf"Stream #\d+:\d+.*: {kind}:", listing) is not None


def check_video(path: str) -> str:
  """Checks `path` is a readable video; returns ffmpeg's stream listing."""
  _check_file(path, "video")
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
  tail = ["-t", f"{duration:.6f}", "-f", "mp4", out_path]
  proc = subprocess.run(base + ["-c:a", "copy"] + tail, capture_output=True, text=True,
                        errors="replace")
  if proc.returncode != 0:  # mp4 cannot hold this codec as is: re-encode it to AAC.
    proc = subprocess.run(base + ["-c:a", "aac", "-b:a", "192k"] + tail,
                          capture_output=True, text=True, errors="replace")
  if proc.returncode != 0:
    msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "ffmpeg failed"
    raise UserError(f"cannot copy the audio of {audio_from} ({msg})")


def write_video(path: str, frames: Iterable[np.ndarray], fps: float,
                audio_from: Optional[str] = None, quality: float = 7) -> int:
  """Encodes frames to an H.264 mp4, atomically, optionally with another file's audio.

  Args:
    path: output file (mp4 container whatever the extension).
    frames: iterable of uint8 (H, W, 3) RGB frames of one size, or an array
      uint8 (T, H, W, 3). Consumed lazily (a generator is never held in memory).
    fps: frames per second (> 0).
    audio_from: optional media file whose first audio stream is copied into the
      output (cut to the video's length); nothing is added if it has no audio.
    quality: 0 (worst) to 10 (best); maps to x264 CRF `int((1 - quality/10) * 51)`.

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
    _check_file(audio_from, "audio source")
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

  def encode(target: str) -> int:
    writer = imageio_ffmpeg.write_frames(
        target, (w, h), pix_fmt_in="rgb24", pix_fmt_out=pix_fmt, fps=fps,
        quality=quality, codec="libx264", macro_block_size=1,
        output_params=["-f", "mp4", "-movflags", "+faststart"])
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
