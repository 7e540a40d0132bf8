"""Tests for deepjax.data.video: image and video I/O."""
import os
import struct
import warnings
import zlib

import jax

import numpy as np
import pytest
from PIL import Image

from deepjax.data import video
from deepjax.errors import UserError


def _rng(seed=0):
  return np.random.default_rng(seed)


def _png16_rgb(path, arr):
  """Writes a 16-bit RGB PNG by hand (Pillow cannot write one)."""
  h, w, _ = arr.shape
  raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

  def chunk(tag, data):
    return (struct.pack(">I", len(data)) + tag + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)))
    f.write(chunk(b"IDAT", zlib.compress(raw)))
    f.write(chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- images


def test_read_rgb_png_exact(tmp_path):
  a = _rng().integers(0, 256, (7, 5, 3), dtype=np.uint8)
  Image.fromarray(a).save(tmp_path / "x.png")
  out = video.read_image(str(tmp_path / "x.png"))
  assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
  np.testing.assert_array_equal(out, a)


def test_read_grayscale(tmp_path):
  g = _rng().integers(0, 256, (6, 4), dtype=np.uint8)
  Image.fromarray(g, mode="L").save(tmp_path / "g.png")
  out = video.read_image(tmp_path / "g.png")
  assert out.shape == (6, 4, 3)
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], g)


def test_read_rgba_composited_on_black(tmp_path):
  rgba = _rng().integers(0, 256, (5, 6, 4), dtype=np.uint8)
  rgba[0, 0, 3] = 0
  rgba[0, 1, 3] = 255
  Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
  out = video.read_image(tmp_path / "a.png")
  expect = np.round(rgba[..., :3].astype(np.float64) * rgba[..., 3:] / 255.0)
  assert np.abs(out.astype(np.float64) - expect).max() <= 0.5 + 1e-9
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(out[0, 1], rgba[0, 1, :3])


def test_read_palette(tmp_path):
  a = _rng().integers(0, 256, (8, 8, 3), dtype=np.uint8)
  p = Image.fromarray(a).quantize(colors=16)
  p.save(tmp_path / "p.png")
  out = video.read_image(tmp_path / "p.png")
  np.testing.assert_array_equal(out, np.asarray(p.convert("RGB")))


def test_read_16bit_gray(tmp_path):
  g = np.array([[0, 257, 65535], [32896, 1000, 60000]], dtype=np.uint16)
  Image.fromarray(g).save(tmp_path / "g16.png")
  out = video.read_image(tmp_path / "g16.png")
  expect = np.round(g / 257.0).astype(np.uint8)
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], expect)


def test_read_16bit_rgb(tmp_path):
  a = _rng().integers(0, 65536, (4, 3, 3)).astype(np.uint16)
  _png16_rgb(tmp_path / "c16.png", a)
  out = video.read_image(tmp_path / "c16.png")
  assert out.shape == (4, 3, 3) and out.dtype == np.uint8
  assert np.abs(out.astype(np.float64) - a / 257.0).max() <= 1.0


def test_read_cmyk_jpeg(tmp_path):
  img = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # pure red in CMYK.
  img.save(tmp_path / "c.jpg", quality=100)
  out = video.read_image(tmp_path / "c.jpg")
  assert out.shape == (6, 8, 3)
  assert out[..., 0].min() > 200 and out[..., 1:].max() < 60


def test_read_exif_orientation(tmp_path):
  a = np.zeros((4, 6, 3), np.uint8)
  a[0, 0] = 255  # top-left marker on a landscape image.
  img = Image.fromarray(a)
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 CW to display".
  img.save(tmp_path / "o.png", exif=exif.tobytes())
  out = video.read_image(tmp_path / "o.png")
  assert out.shape == (6, 4, 3)
  np.testing.assert_array_equal(out, np.rot90(a, k=-1))


@pytest.mark.parametrize("name,content", [
    ("notes.txt", b"hello, not an image\n"),
    ("empty.jpg", b""),
    ("fake.png", b"\x89PNG\r\n\x1a\n garbage"),
])
def test_read_bad_files(tmp_path, name, content):
  (tmp_path / name).write_bytes(content)
  with pytest.raises(UserError) as e:
    video.read_image(tmp_path / name)
  assert "\n" not in str(e.value) and name in str(e.value)


def test_read_truncated_jpeg(tmp_path):
  a = _rng().integers(0, 256, (64, 64, 3), dtype=np.uint8)
  Image.fromarray(a).save(tmp_path / "full.jpg", quality=90)
  data = (tmp_path / "full.jpg").read_bytes()
  (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
  with pytest.raises(UserError):
    video.read_image(tmp_path / "cut.jpg")


def test_read_missing_and_folder(tmp_path):
  with pytest.raises(UserError, match="not found"):
    video.read_image(tmp_path / "nope.png")
  with pytest.raises(UserError, match="not a file"):
    video.read_image(tmp_path)


def test_write_image_roundtrip_and_atomic(tmp_path, monkeypatch):
  a = _rng().integers(0, 256, (5, 9, 3), dtype=np.uint8)
  out = tmp_path / "sub" / "w.png"
  video.write_image(str(out), a)
  np.testing.assert_array_equal(video.read_image(out), a)
  assert os.listdir(out.parent) == ["w.png"]

  # A failing save leaves neither a partial file nor a changed old file.
  def boom(self, fp, *args, **kwargs):
    with open(fp, "wb") as f:
      f.write(b"partial")
    raise RuntimeError("disk full")

  monkeypatch.setattr(Image.Image, "save", boom)
  with pytest.raises(RuntimeError):
    video.write_image(str(out), np.zeros((3, 3, 3), np.uint8))
  monkeypatch.undo()
  assert os.listdir(out.parent) == ["w.png"]
  np.testing.assert_array_equal(video.read_image(out), a)


def test_write_image_bad_extension(tmp_path):
  with pytest.raises(UserError):
    video.write_image(str(tmp_path / "x.notanimage"), np.zeros((2, 2, 3), np.uint8))


def test_list_images(tmp_path):
  for n in ["b.PNG", "a.jpg", "c.txt", ".hidden.png", "d.webp"]:
    (tmp_path / n).write_bytes(b"x")
  (tmp_path / "dir.png").mkdir()
  names = [os.path.basename(p) for p in video.list_images(tmp_path)]
  assert names == ["a.jpg", "b.PNG", "d.webp"]
  assert video.list_images(tmp_path / "dir.png") == []
  with pytest.raises(UserError):
    video.list_images(tmp_path / "missing")
  with pytest.raises(UserError):
    video.list_images(tmp_path / "c.txt")


# ----------------------------------------------------------------------------- videos


def _clip(t, h, w, seed=0):
  """Smooth frames (codec-friendly) with a per-frame brightness ramp."""
  y, x = np.mgrid[0:h, 0:w]
  frames = []
  for i in range(t):
    r = (x * 255 // max(w - 1, 1))
    g = (y * 255 // max(h - 1, 1))
    b = np.full_like(x, 20 + 20 * i)
    frames.append(np.stack([r, g, b], -1).astype(np.uint8))
  return np.stack(frames)


@pytest.mark.parametrize("h,w", [(32, 48), (23, 37)])
def test_video_roundtrip(tmp_path, h, w):
  frames = _clip(10, h, w)
  path = str(tmp_path / "v.mp4")
  n = video.write_video(path, iter(frames), fps=12.5)
  assert n == 10
  info = video.probe_video(path)
  assert (info.num_frames, info.fps, info.width, info.height, info.has_audio) == (
      10, 12.5, w, h, False)
  out, fps, has_audio = video.read_video(path)
  assert out.shape == (10, h, w, 3) and out.dtype == np.uint8
  assert fps == 12.5 and not has_audio
  # Lossy, but close; the frame order is kept (blue ramps up by 20 per frame).
  assert np.abs(out.astype(int) - frames).mean() < 4
  np.testing.assert_allclose(out[..., 2].mean(axis=(1, 2)), 20 + 20 * np.arange(10), atol=4)
  chunks = list(video.iter_video(path, chunk=4))
  assert [c.shape[0] for c in chunks] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate(chunks), out)
  assert video.read_video(path, max_frames=3)[0].shape == (3, h, w, 3)
  assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


def test_write_video_errors(tmp_path):
  with pytest.raises(UserError):
    video.write_video(str(tmp_path / "e.mp4"), [], fps=25)
  with pytest.raises(UserError):
    video.write_video(str(tmp_path / "e.mp4"), _clip(2, 8, 8), fps=0)
  with pytest.raises(ValueError):
    video.write_video(str(tmp_path / "e.mp4"), [np.zeros((8, 8, 3), np.uint8),
                                                np.zeros((8, 10, 3), np.uint8)], fps=25)
  assert os.listdir(tmp_path) == []


def test_bad_videos(tmp_path):
  (tmp_path / "t.mp4").write_bytes(b"not a video at all")
  (tmp_path / "z.mp4").write_bytes(b"")
  for name in ["t.mp4", "z.mp4", "missing.mp4"]:
    p = str(tmp_path / name)
    with pytest.raises(UserError):
      video.read_video(p)
    with pytest.raises(UserError):
      video.probe_video(p)
    with pytest.raises(UserError):
      next(video.iter_video(p))
  (tmp_path / "x.txt").write_text("hello")
  with pytest.raises(UserError):
    video.read_video(str(tmp_path / "x.txt"))


def test_truncated_video(tmp_path):
  path = str(tmp_path / "v.mp4")
  video.write_video(path, _clip(20, 32, 32), fps=10)
  data = open(path, "rb").read()
  # faststart puts the index first: cut the frame data short.
  (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
  try:
    frames, _, _ = video.read_video(str(tmp_path / "cut.mp4"))
  except UserError:
    return
  assert 0 < frames.shape[0] < 20


@pytest.mark.real_data
def test_audio_kept(tmp_path, shared_data):
  src = os.path.join(shared_data, "videos", "tpsmm_driving.mp4")
  if not os.path.exists(src):
    pytest.skip("tpsmm_driving.mp4 absent")
  jax.numpy.zeros(1).block_until_ready()  # JAX's backend (and its at-fork warning) is up
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    info = video.probe_video(src)
    frames, fps, has_audio = video.read_video(src, max_frames=15)
  # Starting ffmpeg is fork + exec: JAX's "os.fork() was called" warning is not shown.
  assert not [w for w in caught if "os.fork()" in str(w.message)]
  assert info.has_audio and (info.width, info.height) == (410, 412)
  assert has_audio and fps == info.fps and frames.shape == (15, 412, 410, 3)
  out = str(tmp_path / "o.mp4")
  video.write_video(out, frames, fps, audio_from=src)
  got = video.probe_video(out)
  assert (got.num_frames, got.fps, got.width, got.height, got.has_audio) == (
      15, fps, 410, 412, True)
  assert sorted(os.listdir(tmp_path)) == ["o.mp4"]
  # A source without audio gives a video without audio.
  silent = str(tmp_path / "s.mp4")
  video.write_video(silent, frames[:3], fps)
  noaudio = str(tmp_path / "n.mp4")
  video.write_video(noaudio, frames[:3], fps, audio_from=silent)
  assert not video.probe_video(noaudio).has_audio


@pytest.mark.real_data
def test_shared_video_counts(shared_data):
  for name in ["lp_d0.mp4", "tpsmm_driving.mp4"]:
    p = os.path.join(shared_data, "videos", name)
    if not os.path.exists(p):
      continue
    info = video.probe_video(p)
    n = sum(c.shape[0] for c in video.iter_video(p, chunk=64))
    assert n == info.num_frames
