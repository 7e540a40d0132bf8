"""deepjax.infer.animate / deepjax animate: best frame, batching, end to end, bad inputs."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from deepjax.infer import animate as animation
from deepjax.errors import UserError
from deepjax.testing import tiny_motion_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A saved random-init motion checkpoint (the layout the training loop writes)."""
  from deepjax.train import checkpoint as ckpt
  from deepjax.train.tasks.motion import MotionTask
  c = tiny_motion_config(steps=1)
  task = MotionTask(c)
  batch = {"source": np.zeros((2, 32, 32, 3), np.uint8),
           "driving": np.zeros((2, 32, 32, 3), np.uint8)}
  state = jax.jit(task.init)(jax.random.key(0), batch)
  d = tmp_path_factory.mktemp("motion_run")
  manager = ckpt.make_manager(str(d), 1)
  ckpt.save(manager, 1, state, {"0": {}}, c)
  manager.wait_until_finished()
  manager.close()
  return str(d)


def test_normalize_landmarks_by_hand():
  square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], np.float64) + 5.0
  # Centred at (6, 6), hull area 4 -> divided by 2.
  np.testing.assert_allclose(animation.normalize_landmarks(square),
                             [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])


def test_find_best_frame_ignores_position_and_scale():
  rng = np.random.default_rng(0)
  src = rng.uniform(0, 100, (68, 2))
  driving = {0: rng.uniform(0, 100, (68, 2)), 10: src * 3.0 + 40.0,
             20: src + rng.normal(0, 8, (68, 2))}
  assert animation.find_best_frame(src, driving) == 10
  with pytest.raises(UserError):
    animation.find_best_frame(None, driving)


@pytest.mark.slow
def test_batches_equal_one_call_and_absolute_identity(workdir):
  fomm, variables, config = animation.load_motion_model(workdir)
  assert config.data.size == 32
  rng = np.random.default_rng(1)
  source = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
  driving = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  calls = []
  one = animation.animate_frames(fomm, variables, source, driving, batch_size=5)
  many = animation.animate_frames(fomm, variables, source, driving, batch_size=2,
                                  progress=calls.append)
  assert one.shape == (5, 32, 32, 3) and one.dtype == np.uint8
  assert calls == [2, 2, 1]
  assert np.max(np.abs(one.astype(int) - many.astype(int))) <= 1
  # Relative motion from frame 0 to frame 0 is the source's own keypoints; absolute
  # keypoints of the source itself too: both must give the same frame.
  rel = animation.animate_frames(fomm, variables, source, driving[:1], relative=True)
  same = animation.animate_frames(fomm, variables, source, source[None], relative=False)
  assert np.max(np.abs(rel.astype(int) - same.astype(int))) <= 1


def test_source_inputs_any_mode(tmp_path, shared_data):
  photo = os.path.join(shared_data, "photos", "tpsmm_source.png")
  rgb = np.asarray(Image.open(photo).convert("RGB"))
  face, info = animation.prepare_source(photo, 32)
  assert face.shape == (32, 32, 3) and info["landmarks"].shape == (68, 2)
  rgba = tmp_path / "rgba.png"
  Image.fromarray(rgb).convert("RGBA").save(rgba)
  np.testing.assert_array_equal(animation.prepare_source(str(rgba), 32)[0], face)
  gray = tmp_path / "gray.png"
  Image.fromarray(rgb).convert("L").save(gray)
  g, _ = animation.prepare_source(str(gray), 32)
  assert g.shape == (32, 32, 3) and np.all(g[..., 0] == g[..., 1])
  wide = tmp_path / "wide.png"
  Image.fromarray(np.zeros((30, 90, 3), np.uint8)).save(wide)
  c, cinfo = animation.prepare_source(str(wide), 16, crop="center")
  assert c.shape == (16, 16, 3) and cinfo["box"] == [30, 0, 60, 30]


@pytest.mark.slow
def test_bad_inputs_leave_no_file(tmp_path, workdir, shared_data, monkeypatch):
  photo = os.path.join(shared_data, "photos", "tpsmm_source.png")
  clip = os.path.join(shared_data, "videos", "lp_d0.mp4")
  out = tmp_path / "out.mp4"
  empty = tmp_path / "empty.mp4"
  empty.write_bytes(b"")
  junk = tmp_path / "junk.mp4"
  junk.write_text("not a video")
  cases = [(os.path.join(shared_data, "photos", "lp_s22.jpg"), clip),  # monkey: no face
           (os.path.join(shared_data, "photos", "lp_s23.jpg"), clip),  # alpaca: no face
           (photo, str(empty)), (photo, str(junk)), (photo, str(tmp_path / "missing.mp4"))]
  for source, driving in cases:
    with pytest.raises(UserError):
      animation.animate_file(workdir, source, driving, str(out), show_progress=False)
    assert not os.listdir(tmp_path) or not out.exists()
  monkeypatch.setattr(animation, "MAX_PIXELS", 1000)
  with pytest.raises(UserError, match="too large"):
    animation.animate_file(workdir, photo, clip, str(out), show_progress=False)
  assert not out.exists()


def test_animation_as_crops_feeds_the_detection_builder(tmp_path, workdir, shared_data):
  """An --output that is not a video name: each frame a crop, alignments.json naming the
  generator, the driving clip and the photo's identity; the detection builder reads them as
  fakes of that identity with whole-crop masks. A non-empty folder is refused, untouched."""
  from deepjax.data.builders import detection  # pylint: disable=import-outside-toplevel
  photo = os.path.join(shared_data, "photos", "tpsmm_source.png")
  clip = os.path.join(shared_data, "videos", "lp_d0.mp4")
  out = tmp_path / "fomm_fakes"
  info = animation.animate_file(workdir, photo, clip, str(out), max_frames=3,
                                show_progress=False)
  assert info["crops"] and info["frames"] == 3
  assert sorted(os.listdir(out)) == ["alignments.json", "frame_000000.png", "frame_000001.png",
                                     "frame_000002.png"]
  entries = {e["file"]: e for e in detection.folder_faces(str(out), "fomm")}
  assert [(e["generator"], e["identity"], e["clip"], e["frame"]) for e in entries.values()] == [
      ("fomm", "tpsmm_source", "lp_d0", i) for i in range(3)]
  real = detection.write_synthetic_folder(str(tmp_path / "real"), range(2), 2, 32)
  built = detection.prepare_detection([("real", real), ("fomm", str(out))], 32,
                                      str(tmp_path / "tfds"), test_identities=("synthetic_1",))
  src = built.as_data_source("train")
  fakes = [src[i] for i in range(len(src)) if src[i]["label"] == 1]
  assert len(fakes) == 3 and all(r["generator"] == b"fomm" and bool(np.all(r["mask"] == 255))
                                 for r in fakes)
  with pytest.raises(UserError, match="not empty"):
    animation.animate_file(workdir, photo, clip, str(out), max_frames=3, show_progress=False)
  assert len(os.listdir(out)) == 4
  with pytest.raises(UserError, match="video file name"):  # a video name it cannot write
    animation.animate_file(workdir, photo, clip, str(tmp_path / "anim.avi"), max_frames=3,
                           show_progress=False)
  assert not (tmp_path / "anim.avi").exists()


@pytest.mark.slow
def test_cli_end_to_end_real_clip(tmp_path, workdir, shared_data):
  from deepjax.data import video
  photo = os.path.join(shared_data, "photos", "tpsmm_source.png")
  clip = os.path.join(shared_data, "videos", "lp_d0.mp4")
  info = video.probe_video(clip)
  out = tmp_path / "anim.mp4"
  cmd = [sys.executable, "-m", "deepjax", "animate", f"--workdir={workdir}", f"--source={photo}",
         f"--driving={clip}", f"--output={out}", "--max_frames=12", "--batch=5",
         "--find_best_frame", "--adapt_scale"]
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
  assert r.returncode == 0, r.stderr
  got = video.probe_video(str(out))
  assert got.num_frames == 12
  assert abs(got.fps - info.fps) < 0.01
  assert (got.width, got.height) == (32, 32)
  assert got.has_audio == info.has_audio
  from deepjax.provenance.verify import read_c2pa
  manifest = read_c2pa(str(out))
  assert manifest["valid"] and manifest["digital_source_type"] == "trainedAlgorithmicMedia"
  # A bad input through the program: one error line, exit status 2, no file.
  bad = tmp_path / "bad.mp4"
  r = subprocess.run(cmd[:5] + [f"--source={os.path.join(shared_data, 'photos', 'lp_s22.jpg')}",
                                f"--driving={clip}", f"--output={bad}"],
                     capture_output=True, text=True, cwd=REPO, timeout=600)
  assert r.returncode == 2
  lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: no face"), r.stderr
  assert not bad.exists()
  # --mode=avd on a first-order model (no AVD network): one error line, no file.
  r = subprocess.run(cmd[:5] + [f"--source={photo}", f"--driving={clip}", f"--output={bad}",
                                "--max_frames=2", "--mode=avd"],
                     capture_output=True, text=True, cwd=REPO, timeout=600)
  lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
  assert r.returncode == 2 and len(lines) == 1 and "no AVD network" in lines[0], r.stderr
  assert not bad.exists()


def test_landmark_metrics_identical_and_blank(shared_data):
  from deepjax.eval import reconstruction
  face, _ = animation.prepare_source(os.path.join(shared_data, "photos", "tpsmm_source.png"), 64)
  frames = np.stack([face, face[:, ::-1]])
  same = reconstruction.landmark_metrics(frames, frames, every=1)
  assert same["gt_faces"] == 2 and same["both"] == 2 and same["missing"] == 0
  assert same["akd_sum"] == 0.0 and same["aed_sum"] < 1e-6
  blank = reconstruction.landmark_metrics(frames, np.zeros_like(frames), every=1)
  assert blank["missing"] == 2 and blank["both"] == 0
  shifted = np.roll(frames, 2, axis=2)  # 2 px to the right: AKD about 2 px / 2 (x and y)
  moved = reconstruction.landmark_metrics(frames, shifted, every=1)
  assert moved["both"] == 2
  assert 0.5 < moved["akd_sum"] / moved["both"] < 1.6
