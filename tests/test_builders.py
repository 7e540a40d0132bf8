"""Tests for the TFDS builders (ArrayRecord, no TensorFlow)."""
import json
import logging
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from deepjax.data.builders import common
from deepjax.data.builders import face_folders
from deepjax.data.builders import synthetic_faces
from deepjax.errors import UserError


def _records(builder, split):
  ds = builder.as_data_source(split)
  return [ds[i] for i in range(len(ds))]


def test_no_tensorflow_needed(tmp_path):
  """Builds and reads a dataset with an importable-but-poisoned `tensorflow`."""
  fake = tmp_path / "fake" / "tensorflow"
  fake.mkdir(parents=True)
  (fake / "__init__.py").write_text("raise RuntimeError('tensorflow was imported')\n")
  (tmp_path / "faces").mkdir()
  Image.new("RGB", (10, 12), (1, 2, 3)).save(tmp_path / "faces" / "x.png")
  code = (
      "import sys\n"
      "from deepjax.data.builders import face_folders, synthetic_faces\n"
      "from deepjax.data import pipeline\n"
      f"b = face_folders.prepare_face_folder({str(tmp_path / 'faces')!r}, size=4,"
      f" data_dir={str(tmp_path / 'data')!r}, test_fraction=0)\n"
      "print(b.as_data_source('train')[0]['image'].sum(), 'tensorflow' in sys.modules)\n")
  env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[-2:] == [str(16 * 6), "False"]


# ----------------------------------------------------------------------------- helpers


def test_crop_landmarks_hand_worked():
  # 100 x 50 image: square crop is x in [25, 75), side 50.
  lm = np.array([[0.0, 0.0], [-0.5, -1.0], [0.5, 1.0], [-1.0, 0.0]], np.float32)
  out = common.crop_landmarks(lm, 100, 50)
  # x = -0.5 -> 25 px edge coordinate -> left edge of the crop -> -1.
  np.testing.assert_allclose(out, [[0, 0], [-1, -1], [1, 1], [-2, 0]], atol=1e-6)


def test_square_resize_keeps_aspect():
  img = np.zeros((30, 60, 3), np.uint8)
  img[:, 15:45] = 200  # the centred square.
  out = common.square_resize(img, 10)
  assert out.shape == (10, 10, 3)
  assert out.min() >= 190  # no black margin kept: the crop was exactly the square.


def test_split_files_deterministic_and_nonempty():
  names = [f"f{i}.png" for i in range(50)]
  train, test = face_folders.split_files(names, 0.2)
  assert sorted(train + test) == sorted(names) and not set(train) & set(test)
  assert test == sorted(n for n in names if common.name_fraction(n) < 0.2)
  # Adding files never moves an old file across splits.
  train2, test2 = face_folders.split_files(names + ["new1.png", "new2.png"], 0.2)
  assert set(test) <= set(test2) and set(train) <= set(train2)
  t, s = face_folders.split_files(["a.png", "b.png"], 0.01)
  assert len(t) == 1 and len(s) == 1
  assert face_folders.split_files(["a.png"], 0.5)[1] in ([], ["a.png"])
  assert face_folders.split_files(names, 0.0) == (names, [])


# ----------------------------------------------------------------------------- face_folders


def _make_folder(path):
  rng = np.random.default_rng(0)
  path.mkdir()
  Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path / "a.png")
  Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(path / "b.jpg")
  Image.fromarray(rng.integers(0, 256, (25, 25, 4), dtype=np.uint8)).save(path / "c.png")
  Image.fromarray(rng.integers(0, 65536, (16, 24)).astype(np.uint16)).save(path / "d.png")
  solid = np.zeros((24, 24, 3), np.uint8)
  solid[...] = (10, 200, 30)
  Image.fromarray(solid).save(path / "e.png")
  (path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
  (path / "notes.txt").write_text("ignored: not an image extension")
  lm = np.linspace(-0.5, 0.5, 136).reshape(68, 2)
  (path / face_folders.ALIGNMENTS_FILE).write_text(json.dumps({"faces": [
      {"file": "a.png", "landmarks": lm.tolist()},
      {"file": "e.png", "landmarks": [[0, 0]] * 5},  # malformed: ignored.
  ]}))
  return lm


def test_face_folder_build(tmp_path, caplog):
  lm = _make_folder(tmp_path / "faces")
  with caplog.at_level(logging.WARNING, logger="absl"):
    builder = face_folders.prepare_face_folder(tmp_path / "faces", size=12,
                                               data_dir=tmp_path / "data", test_fraction=0.0)
  assert "broken.jpg" in caplog.text
  assert "tensorflow" not in sys.modules
  recs = {r["file"].decode(): r for r in _records(builder, "train")}
  assert sorted(recs) == ["a.png", "b.jpg", "c.png", "d.png", "e.png"]
  for r in recs.values():
    assert r["image"].shape == (12, 12, 3) and r["image"].dtype == np.uint8
    assert r["landmarks"].shape == (68, 2) and r["landmarks"].dtype == np.float32
  np.testing.assert_array_equal(recs["e.png"]["image"][..., 1], 200)
  assert bool(recs["a.png"]["has_landmarks"]) and not bool(recs["e.png"]["has_landmarks"])
  np.testing.assert_allclose(recs["a.png"]["landmarks"], common.crop_landmarks(lm, 30, 40),
                             atol=1e-6)
  np.testing.assert_array_equal(recs["b.jpg"]["landmarks"], 0)
  # Stored PNG is lossless: equal to our own crop + resize of the source.
  from deepjax.data import video
  expect = common.square_resize(video.read_image(tmp_path / "faces" / "c.png"), 12)
  np.testing.assert_array_equal(recs["c.png"]["image"], expect)
  assert "test" not in builder.info.splits


def test_face_folder_reuse_and_rebuild(tmp_path):
  _make_folder(tmp_path / "faces")
  kw = dict(size=8, data_dir=tmp_path / "data", test_fraction=0.4)
  b1 = face_folders.prepare_face_folder(tmp_path / "faces", **kw)
  b2 = face_folders.prepare_face_folder(tmp_path / "faces", **kw)
  assert b1.data_dir == b2.data_dir
  n = {s: len(b1.as_data_source(s)) for s in ("train", "test")}
  assert n["train"] + n["test"] == 5 and n["test"] >= 1
  rng = np.random.default_rng(1)
  Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(
      tmp_path / "faces" / "f.png")
  b3 = face_folders.prepare_face_folder(tmp_path / "faces", **kw)
  assert b3.data_dir != b1.data_dir
  assert len(b3.as_data_source("train")) + len(b3.as_data_source("test")) == 6


def test_prepare_race_uses_the_other_process_copy(tmp_path, monkeypatch):
  """Two runs preparing the same data at once: the one whose rename loses reuses the other's."""
  _make_folder(tmp_path / "faces")
  kw = dict(size=8, data_dir=tmp_path / "data", test_fraction=0.4)
  first = face_folders.prepare_face_folder(tmp_path / "faces", **kw)
  n = len(first.as_data_source("train"))
  # The second process saw no data, then lost the rename to the first one.
  monkeypatch.setattr(type(first), "is_prepared", lambda self: False)
  def lost_rename(self, **_):
    raise FileExistsError(f"Destination {self.data_path} already exists.")
  monkeypatch.setattr(type(first), "download_and_prepare", lost_rename)
  second = face_folders.prepare_face_folder(tmp_path / "faces", **kw)
  assert len(second.as_data_source("train")) == n
  # Without the other process's copy the error is not hidden.
  shutil.rmtree(first.data_path)
  with pytest.raises(FileExistsError):
    face_folders.prepare_face_folder(tmp_path / "faces", **kw)


def test_face_folder_errors(tmp_path):
  with pytest.raises(UserError, match="not found"):
    face_folders.prepare_face_folder(tmp_path / "missing", data_dir=tmp_path / "d")
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="no image files"):
    face_folders.prepare_face_folder(tmp_path / "empty", data_dir=tmp_path / "d")
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "x.png").write_bytes(b"nope")
  (tmp_path / "bad" / "y.jpg").write_bytes(b"")
  with pytest.raises(UserError, match="no readable images"):
    face_folders.prepare_face_folder(tmp_path / "bad", data_dir=tmp_path / "d")
  (tmp_path / "badjson").mkdir()
  Image.new("RGB", (8, 8)).save(tmp_path / "badjson" / "x.png")
  (tmp_path / "badjson" / face_folders.ALIGNMENTS_FILE).write_text("{not json")
  with pytest.raises(UserError, match="alignments.json"):
    face_folders.prepare_face_folder(tmp_path / "badjson", data_dir=tmp_path / "d")


# ----------------------------------------------------------------------------- synthetic


def _stub_synthetic():
  """A tiny stand-in for deepjax.data.synthetic following docs/CONTRACTS.md."""
  mod = types.ModuleType("deepjax.data.synthetic")

  def sample_identity(seed):
    rng = np.random.default_rng(seed)
    return {"color": rng.uniform(0.2, 0.8, 3).astype(np.float32)}

  def sample_motion(seed, n):
    rng = np.random.default_rng(seed)
    return {"yaw": rng.uniform(-1, 1, n).astype(np.float32),
            "mouth": rng.uniform(0, 1, n).astype(np.float32)}

  def render(identity, motion, size):
    n = motion["yaw"].shape[0]
    img = np.broadcast_to(identity["color"], (n, size, size, 3)).copy()
    img[:, :, : size // 2, 0] = motion["mouth"][:, None, None]
    lm = np.zeros((n, 68, 2), np.float32)
    lm[..., 0] = motion["yaw"][:, None] * 0.5
    lm[..., 1] = np.linspace(-0.9, 0.9, 68)[None]
    return img.astype(np.float32), lm

  mod.sample_identity, mod.sample_motion, mod.render = sample_identity, sample_motion, render
  return mod


@pytest.fixture
def stub_synthetic(monkeypatch):
  mod = _stub_synthetic()
  monkeypatch.setitem(sys.modules, "deepjax.data.synthetic", mod)
  return mod


def _check_synthetic(builder, syn, seeds, identity_seed, size, counts):
  ident = syn.sample_identity(identity_seed)
  for split, seed, n in zip(("train", "test"), seeds, counts):
    recs = sorted(_records(builder, split), key=lambda r: int(r["index"]))
    assert [int(r["index"]) for r in recs] == list(range(n))
    motion = syn.sample_motion(seed, n)
    images, lms = syn.render(ident, motion, size)
    for i, r in enumerate(recs):
      assert int(r["identity"]) == identity_seed and bool(r["has_landmarks"])
      np.testing.assert_array_equal(r["image"],
                                    np.round(np.clip(images[i], 0, 1) * 255).astype(np.uint8))
      np.testing.assert_allclose(r["landmarks"], lms[i], atol=1e-6)
      for k, v in motion.items():
        assert np.float32(r[k]) == v[i]
    # Re-rendering from the stored motion fields gives the same frames.
    stored = {k: np.asarray([r[k] for r in recs], np.float32) for k in motion}
    again, _ = syn.render(ident, stored, size)
    np.testing.assert_allclose(again, images, atol=1e-6)


def test_synthetic_round_trip_stub(tmp_path, stub_synthetic):
  builder = synthetic_faces.prepare_synthetic(7, 5, size=8, data_dir=tmp_path, num_test=3,
                                              split_seeds=(11, 12))
  assert "tensorflow" not in sys.modules
  _check_synthetic(builder, stub_synthetic, (11, 12), 7, 8, (5, 3))
  seeds = synthetic_faces.default_split_seeds(7)
  assert seeds[0] != seeds[1] and seeds != synthetic_faces.default_split_seeds(8)
  with pytest.raises(UserError):
    synthetic_faces.prepare_synthetic(7, 5, size=8, data_dir=tmp_path, num_test=3,
                                      split_seeds=(4, 4))


@pytest.mark.slow  # the renderer's jit compile takes 7-25 s on a shared 2-core CPU.
def test_synthetic_round_trip_real(tmp_path):
  import deepjax.data.synthetic as syn  # pylint: disable=import-outside-toplevel
  # 4 frames per split: one render chunk shape, so the renderer compiles once.
  builder = synthetic_faces.prepare_synthetic(3, 4, size=16, data_dir=tmp_path, num_test=4,
                                              split_seeds=(1, 2))
  _check_synthetic(builder, syn, (1, 2), 3, 16, (4, 4))
  fields = set(syn.sample_motion(0, 1))
  assert fields <= set(builder.info.features)


# ----------------------------------------------------------------------------- talking heads


def make_video_folder(path, n_videos=3, n_frames=6, size=16):
  """Videos whose frames are solid colours: red = 30 * frame, green = 60 * video + 20."""
  from deepjax.data import video  # pylint: disable=g-import-not-at-top
  path.mkdir()
  for v in range(n_videos):
    frames = np.zeros((n_frames, size, size + 4, 3), np.uint8)
    frames[..., 0] = (30 * np.arange(n_frames))[:, None, None]
    frames[..., 1] = 60 * v + 20
    video.write_video(str(path / f"clip{v}.mp4"), frames, fps=10)
  return str(path)


def test_talking_heads(tmp_path, caplog):
  from deepjax.data.builders import talking_heads  # pylint: disable=g-import-not-at-top
  folder = make_video_folder(tmp_path / "vids", n_videos=3, n_frames=7)
  (tmp_path / "vids" / "broken.mp4").write_bytes(b"not a video")
  with caplog.at_level(logging.WARNING, logger="absl"):
    b = talking_heads.prepare_talking_heads(folder, size=8, data_dir=tmp_path / "d",
                                            frame_step=2, test_videos=("clip1",))
  assert "broken.mp4" in caplog.text
  for split, names in (("train", ["clip0.mp4", "clip2.mp4"]), ("test", ["clip1.mp4"])):
    starts, counts = common.video_offsets(b, split)
    assert b.info.metadata[split]["videos"] == names
    np.testing.assert_array_equal(counts, [4] * len(names))  # frames 0, 2, 4, 6.
    ds = b.as_data_source(split)
    assert len(ds) == counts.sum()
    for v, name in enumerate(names):
      recs = [ds[int(i)] for i in range(starts[v], starts[v] + counts[v])]
      assert [int(r["frame"]) for r in recs] == [0, 2, 4, 6]
      assert all(int(r["video"]) == v and r["name"] == name.encode() for r in recs)
      vid = int(name[4])
      for r in recs:
        assert r["image"].shape == (8, 8, 3)
        assert abs(int(r["image"][4, 4, 1]) - (60 * vid + 20)) <= 6
        assert abs(int(r["image"][4, 4, 0]) - 30 * int(r["frame"])) <= 6
  capped = talking_heads.prepare_talking_heads(folder, size=8, data_dir=tmp_path / "d",
                                               max_frames=2, test_fraction=0.0)
  np.testing.assert_array_equal(common.video_offsets(capped, "train")[1], [2, 2, 2])


def test_talking_heads_errors(tmp_path):
  from deepjax.data.builders import talking_heads  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match="not found"):
    talking_heads.prepare_talking_heads(tmp_path / "none", data_dir=tmp_path / "d")
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="no video files"):
    talking_heads.prepare_talking_heads(tmp_path / "empty", data_dir=tmp_path / "d")
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "x.mp4").write_bytes(b"junk")
  with pytest.raises(UserError, match="no readable videos"):
    talking_heads.prepare_talking_heads(tmp_path / "bad", data_dir=tmp_path / "d")
  folder = make_video_folder(tmp_path / "v", n_videos=2, n_frames=2)
  with pytest.raises(UserError, match="clip9"):
    talking_heads.prepare_talking_heads(folder, data_dir=tmp_path / "d", test_videos=("clip9",))


def test_talking_heads_frame_folders_and_split_layout(tmp_path):
  from deepjax.data.builders import talking_heads  # pylint: disable=g-import-not-at-top
  root = tmp_path / "fomm"
  for split, clips in (("train", ["p1#a", "p2#b"]), ("test", ["p3#c"])):
    for c, clip in enumerate(clips):
      d = root / split / clip
      d.mkdir(parents=True)
      for f in range(4):
        img = np.zeros((10, 10, 3), np.uint8)
        img[..., 0] = 40 * f
        img[..., 2] = 100 + 50 * c
        Image.fromarray(img).save(d / f"{f:07d}.png")
      (d / "0000009.png").write_bytes(b"broken frame")
  make_video_folder(root / "train" / "vid")  # a video folder is not a frame folder...
  os.rename(root / "train" / "vid" / "clip0.mp4", root / "train" / "v.mp4")  # ...a file is.
  for p in (root / "train" / "vid").iterdir():
    p.unlink()
  (root / "train" / "vid").rmdir()
  b = talking_heads.prepare_talking_heads(root, size=6, data_dir=tmp_path / "d")
  assert b.info.metadata["train"]["videos"] == ["train/p1#a", "train/p2#b", "train/v.mp4"]
  assert b.info.metadata["test"]["videos"] == ["test/p3#c"]
  np.testing.assert_array_equal(common.video_offsets(b, "train")[1], [4, 4, 6])
  ds = b.as_data_source("train")
  # Stored as JPEG (the talking_heads default): equal within a few levels.
  np.testing.assert_allclose([int(ds[i]["image"][3, 3, 0]) for i in range(4)],
                             [0, 40, 80, 120], atol=3)
  assert abs(int(ds[5]["image"][3, 3, 2]) - 150) <= 3
