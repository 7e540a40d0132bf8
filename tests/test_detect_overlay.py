"""The annotated copy `deepjax detect --output` writes: boxes coloured by score, the mask tint,
held boxes between sampled frames, the frame count; and the program end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepjax.data import images, video
from deepjax.infer import detect_overlay as overlay
from deepjax.ops import align

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_score_colour_runs_green_to_red():
  assert overlay.score_colour(0.0) == (0, 255, 0)
  assert overlay.score_colour(0.5) == (255, 255, 0)
  assert overlay.score_colour(1.0) == (255, 0, 0)


def test_boxes_coloured_by_score_and_nothing_else_changes():
  frame = np.full((120, 160, 3), 100, np.uint8)
  marks = [overlay.FaceMark([20, 40, 60, 100], 1.0), overlay.FaceMark([90, 40, 140, 100], 0.0)]
  out = overlay.draw_marks(frame, marks)
  assert out.shape == frame.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[70, 20], [255, 0, 0])   # left edge of the fake's box
  np.testing.assert_array_equal(out[70, 140], [0, 255, 0])  # right edge of the real's box
  np.testing.assert_array_equal(out[70, 40], frame[70, 40])  # inside a box: untouched
  np.testing.assert_array_equal(out[110:, :], frame[110:, :])  # below every box
  np.testing.assert_array_equal(frame, 100)  # the input frame is not drawn on


def test_mask_tints_only_where_the_mask_is():
  frame = np.full((64, 64, 3), 100, np.uint8)
  matrix = np.array([[1.0, 0.0, -16.0], [0.0, 1.0, -16.0]])  # crop = frame[16:48, 16:48]
  mask = np.zeros((32, 32), np.float32)
  mask[8:24, 8:24] = 1.0
  out = overlay.draw_marks(frame, [overlay.FaceMark([0, 0, 63, 63], 0.5, mask, matrix)])
  assert out[32, 32, 0] > 140 and out[32, 32, 1] < 70  # inside the mask: red tint
  np.testing.assert_array_equal(out[20, 20], frame[20, 20])  # in the crop, outside the mask
  assert align.crop(out, matrix, 32).shape == (32, 32, 3)


def test_video_copy_holds_boxes_between_sampled_frames(tmp_path):
  src = str(tmp_path / "in.mp4")
  video.write_video(src, np.full((5, 48, 64, 3), 90, np.uint8), fps=10, quality=10)
  out = str(tmp_path / "out.mp4")
  n = overlay.write_annotated(src, "video", {2: [overlay.FaceMark([8, 8, 40, 40], 1.0)]}, out)
  frames = video.read_video(out)[0]
  assert n == 5 and frames.shape == (5, 48, 64, 3)
  red_edge = frames[:, 24, 8].astype(int)
  assert np.all(red_edge[:2, 0] < 130) and np.all(red_edge[2:, 0] > 200), red_edge
  assert np.all(red_edge[2:, 1] < 60)


def _micro_detector_run(tmp_path):
  from deepjax import testing  # pylint: disable=import-outside-toplevel
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  config = load_config("detect", "tiny,mask")
  with config.unlocked():
    config.model.update(stem=8, stages=((8, 1, 1, 3, 1), (16, 1, 2, 3, 2)), head=16,
                        mask_stage=1)
    config.data.size = 32
  return testing.random_detect_run(str(tmp_path / "run"), config)


def _detect(args, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "deepjax", "detect"] + args, capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300, check=False)


def test_output_refuses_a_folder_and_a_wrong_extension(tmp_path):
  (tmp_path / "in").mkdir()
  images.write_image(str(tmp_path / "in" / "a.png"), np.zeros((32, 32, 3), np.uint8))
  for inp, out, msg in [(tmp_path / "in", tmp_path / "o.mp4", "not of a folder"),
                        (tmp_path / "in" / "a.png", tmp_path / "o.mp4", "must end in one of")]:
    proc = _detect([f"--input={inp}", f"--workdir={tmp_path}", f"--output={out}"], tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and err[-1].startswith("error:") and msg in err[-1], proc.stderr
    assert not out.exists()


@pytest.mark.real_data
@pytest.mark.slow  # a subprocess: dlib, the detector's compile, the scoring
def test_detect_writes_an_annotated_photo(tmp_path, shared_data):
  photo = os.path.join(shared_data, "photos", "tpsmm_source.png")
  run = _micro_detector_run(tmp_path)
  out, report = tmp_path / "boxed.png", tmp_path / "r.json"
  proc = _detect([f"--input={photo}", f"--workdir={run}", f"--output={out}",
                  f"--json={report}", "--threshold=0"], tmp_path)
  assert proc.returncode == 0, proc.stderr
  full = json.loads(report.read_text())  # at threshold 0 every face is called fake
  assert full["threshold"] == 0.0 and full["files"][0]["verdict"] == "fake"
  assert "FAKE" in proc.stdout
  before, after = images.read_image(photo), images.read_image(str(out))
  assert after.shape == before.shape
  face = json.loads(report.read_text())["files"][0]["faces"][0]
  left, top, _, bottom = (int(round(v)) for v in face["box"])
  changed = np.any(after != before, axis=-1)
  assert changed[top:bottom + 1, left].all()  # the box's left edge is drawn
  assert not changed[-20:, -20:].any() and changed.mean() < 0.5  # the rest is the photo
