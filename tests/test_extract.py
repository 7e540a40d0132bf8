"""Extraction end to end: `deepjax extract` on real footage, and bad inputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.faces import extract
from deepjax.ops import align

# subprocess forks then execs at once; JAX's fork warning (from conftest's import) is moot.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "deepjax", "extract", *args], capture_output=True,
                        text=True, env=env, timeout=300)


def _cli_start(*args):
  """`deepjax extract ARGS` started in the background (several run at once)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", "deepjax", "extract", *args], text=True,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _ffmpeg(*args):
  import imageio_ffmpeg
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
                  *args], check=True, timeout=60)


def _error_lines(stderr):
  return [l for l in stderr.splitlines() if l.startswith("error:")]


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
  # the shared_data fixture is per test; this module-wide run finds the folder the same way
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  SHARED_DATA = os.path.join(os.path.dirname(repo), "shared", "data")  # pylint: disable=invalid-name
  if not os.path.isdir(SHARED_DATA):
    pytest.skip("real footage not found")
  out = tmp_path_factory.mktemp("extract")
  src = os.path.join(SHARED_DATA, "videos", "lp_d18.mp4")
  proc = _cli(f"--input={src}", f"--output={out}", "--max_frames=12", "--every_n_frames=3",
              "--smooth=3", "--size=96")
  return proc, out, src


@pytest.mark.real_data
def test_cli_on_real_clip(clip_run):
  from deepjax.data import video
  proc, out, src = clip_run
  assert proc.returncode == 0, proc.stderr
  assert "detector: dlib" in proc.stderr
  doc = json.load(open(out / "alignments.json"))
  faces = doc["faces"]
  assert [f["frame"] for f in faces] == [0, 3, 6, 9]
  assert sorted(os.listdir(out)) == sorted([f["file"] for f in faces] + ["alignments.json"])
  frames, _, _ = video.read_video(src, max_frames=10)
  for rec in faces:
    assert rec["file"] == f"lp_d18_{rec['frame']:06d}_0.png"
    m = np.array(rec["matrix"])
    lm_frame = np.array(rec["landmarks_frame"])
    lm = np.array(rec["landmarks"])
    assert m.shape == (2, 3) and lm_frame.shape == (68, 2) and lm.shape == (68, 2)
    # crop landmarks = frame landmarks through the matrix, in [-1, 1] align_corners=False
    px = lm_frame @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(lm, (px + 0.5) / 96 * 2 - 1, atol=1e-4)
    assert np.abs(lm).max() < 1.0
    # the PNG is the frame cut with the recorded matrix
    crop = video.read_image(str(out / rec["file"]))
    assert crop.shape == (96, 96, 3)
    np.testing.assert_array_equal(crop, align.crop(frames[rec["frame"]], m, 96))
  assert doc["no_face"] == []
  assert doc["settings"]["smooth"] == 3


@pytest.mark.real_data
def test_alignments_readable_by_face_folders_builder(clip_run):
  _, out, _ = clip_run
  ff = pytest.importorskip("deepjax.data.builders.face_folders")
  got = ff.read_alignments(str(out))
  assert len(got) == 4 and all(v.shape == (68, 2) for v in got.values())


@pytest.mark.real_data
def test_cli_animation_photo_and_clip(shared_data, tmp_path):
  from deepjax.data import video
  photo = os.path.join(shared_data, "photos", "lp_s12.jpg")
  clip = os.path.join(shared_data, "videos", "lp_d19.mp4")
  folder = tmp_path / "in"
  folder.mkdir()
  os.symlink(photo, folder / "lp_s12.jpg")
  os.symlink(clip, folder / "lp_d19.mp4")
  out = tmp_path / "out"
  proc = _cli(f"--input={folder}", f"--output={out}", "--for=animation", "--size=128",
              "--max_frames=20", "--every_n_frames=5")
  assert proc.returncode == 0, proc.stderr
  assert video.read_image(str(out / "lp_s12.png")).shape == (128, 128, 3)
  info = video.probe_video(str(out / "lp_d19.mp4"))
  assert (info.width, info.height, info.num_frames, info.has_audio) == (128, 128, 20, True)
  doc = json.load(open(out / "alignments.json"))
  assert {c["file"] for c in doc["animation"]} == {"lp_s12.png", "lp_d19.mp4"}


def _bad_files(folder):
  """Writes the bad inputs; returns {name: path}."""
  from PIL import Image
  folder.mkdir(exist_ok=True)
  paths = {}
  paths["empty.mp4"] = folder / "empty.mp4"
  paths["empty.mp4"].write_bytes(b"")
  paths["corrupt.mp4"] = folder / "corrupt.mp4"
  paths["corrupt.mp4"].write_bytes(np.random.default_rng(0).bytes(5000))
  paths["notes.txt"] = folder / "notes.txt"
  paths["notes.txt"].write_text("not a picture\n")
  paths["text.png"] = folder / "text.png"  # a text file named like an image
  paths["text.png"].write_text("not a picture either\n")
  paths["tiny.png"] = folder / "tiny.png"
  Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(paths["tiny.png"])
  paths["zero_frames.mp4"] = folder / "zero_frames.mp4"
  _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=1", "-frames:v", "0", "-c:v", "libx264",
          str(paths["zero_frames.mp4"]))
  paths["blank.png"] = folder / "blank.png"  # a readable image without a face
  Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(paths["blank.png"])
  return {k: str(v) for k, v in paths.items()}


def test_bad_inputs_library(tmp_path):
  paths = _bad_files(tmp_path / "bad")
  opts = extract.ExtractOptions()
  out = str(tmp_path / "out")
  expect = {"empty.mp4": "empty", "corrupt.mp4": "not a readable video",
            "notes.txt": "not an image or video", "zero_frames.mp4": "no video stream",
            "tiny.png": "too small"}
  for name, msg in expect.items():
    with pytest.raises(UserError, match=msg):
      kind = extract.classify(paths[name])
      extract.extract_source(paths[name], kind, out, opts, "dlib")
  res = extract.extract_source(paths["blank.png"], "image", out, opts, "dlib")
  assert res["faces"] == [] and res["no_face"] == [{"source": paths["blank.png"], "frame": 0}]
  assert not os.path.exists(out) or os.listdir(out) == []
  with pytest.raises(UserError, match="not found"):
    extract.list_sources(str(tmp_path / "missing"))
  with pytest.raises(UserError, match="size"):
    extract.ExtractOptions(size=2).check()
  with pytest.raises(UserError, match="centering"):
    extract.ExtractOptions(centering="feet").check()


def test_cli_bad_inputs_fail_cleanly(tmp_path):
  """Each bad input alone, then a folder of them: one error line, exit 2, and no output
  folder left behind (not even the missing parents of --output)."""
  paths = _bad_files(tmp_path / "bad")
  expect = {"notes.txt": "not an image or video file", "empty.mp4": "video is empty (0 bytes)",
            "corrupt.mp4": "not a readable video (", "text.png": "not an image file (",
            "tiny.png": "image too small for face detection (1x1)",
            "blank.png": "no face found in"}
  procs = {name: _cli_start(f"--input={paths[name]}", f"--output={tmp_path / name / 'out'}")
           for name in expect}
  procs["folder"] = _cli_start(f"--input={tmp_path / 'bad'}", f"--output={tmp_path / 'out'}")
  done = {name: (p, p.communicate(timeout=300)[1]) for name, p in procs.items()}
  for name, msg in expect.items():
    p, stderr = done[name]
    assert p.returncode == 2, (name, stderr)
    errors = _error_lines(stderr)
    assert len(errors) == 1 and errors[0].startswith(f"error: {msg}"), (name, stderr)
    assert errors[0].endswith(paths[name]) and "Traceback" not in stderr, (name, stderr)
    assert not (tmp_path / name).exists(), name
  # a folder of nothing usable: one skip line per file, one error line, no output folder
  p, stderr = done["folder"]
  assert p.returncode == 2, stderr
  assert len(_error_lines(stderr)) == 1
  assert len([l for l in stderr.splitlines() if l.startswith("skip:")]) == len(paths)
  assert not (tmp_path / "out").exists()
  assert "Traceback" not in stderr


@pytest.mark.real_data
def test_cli_odd_image_modes(shared_data, tmp_path):
  """Grayscale, RGBA and 16-bit PNGs of a real face are extracted; a no-face photo is skipped."""
  from PIL import Image
  from deepjax.data import video
  rgb = video.read_image(os.path.join(shared_data, "photos", "lp_s3.jpg"))
  folder = tmp_path / "odd"
  folder.mkdir()
  Image.fromarray(rgb).convert("L").save(folder / "grey.png")
  Image.fromarray(np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1),
                  "RGBA").save(folder / "rgba.png")
  grey16 = (np.asarray(Image.fromarray(rgb).convert("L"), np.uint16) * 257)
  Image.fromarray(grey16).save(folder / "deep16.png")
  assert Image.open(folder / "deep16.png").mode.startswith("I")
  os.symlink(os.path.join(shared_data, "photos", "lp_s23.jpg"), folder / "alpaca.jpg")
  out = tmp_path / "out"
  proc = _cli(f"--input={folder}", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  files = sorted(f["file"] for f in json.load(open(out / "alignments.json"))["faces"])
  assert files == ["deep16_000000_0.png", "grey_000000_0.png", "rgba_000000_0.png"]
  assert "skip: no face found in" in proc.stderr and "alpaca.jpg" in proc.stderr


@pytest.mark.real_data
def test_track_two_faces(shared_data, tmp_path):
  """A synthetic clip with two real faces that swap sides: track ids follow identities."""
  from PIL import Image
  from deepjax.data import video
  a = video.read_image(os.path.join(shared_data, "photos", "lp_s3.jpg"))[100:300, 180:380]
  b = video.read_image(os.path.join(shared_data, "photos", "tpsmm_source.png"))[200:620, 170:590]
  b = np.asarray(Image.fromarray(b).resize((200, 200)))
  frames = []
  for i in range(6):
    f = np.full((240, 560, 3), 90, np.uint8)
    left, right = (a, b) if i < 3 else (b, a)  # a hard cut: the two people change places
    f[20:220, 20 + i:220 + i] = left
    f[20:220, 340 - i:540 - i] = right
    frames.append(f)
  path = str(tmp_path / "two.mp4")
  video.write_video(path, frames, fps=10)
  opts = extract.ExtractOptions(faces="track", size=64)
  res = extract.extract_source(path, "video", str(tmp_path / "out"), opts, "dlib")
  by_frame = {}
  for r in res["faces"]:
    by_frame.setdefault(r["frame"], {})[r["track"]] = (r["box"][0] + r["box"][2]) / 2
  assert sorted(by_frame) == list(range(6)) and all(len(v) == 2 for v in by_frame.values())
  first_left = min(by_frame[0], key=by_frame[0].get)
  for i in range(6):
    left = min(by_frame[i], key=by_frame[i].get)
    assert (left == first_left) == (i < 3), (i, by_frame[i])


@pytest.mark.real_data
def test_failed_source_leaves_no_crops(shared_data, tmp_path, monkeypatch):
  src = os.path.join(shared_data, "videos", "lp_d0.mp4")
  opts = extract.ExtractOptions(max_frames=3)
  calls = []
  real = extract._crop_one  # pylint: disable=protected-access

  def flaky(*args):
    calls.append(1)
    if len(calls) == 3:
      raise UserError("disk full (simulated)")
    return real(*args)
  monkeypatch.setattr(extract, "_crop_one", flaky)
  out = tmp_path / "out"
  with pytest.raises(UserError, match="simulated"):
    extract.extract_source(src, "video", str(out), opts, "dlib")
  assert os.listdir(out) == []


def test_same_stem_sources_get_distinct_names():
  assert extract.source_stem("/a/clip.mp4") == "clip"
  assert extract.source_stem("/a/clip.mp4", unique=False) == "clip_mp4"
