"""`deepjax detect`: one-line errors and no output file for inputs without a usable face."""
import os
import subprocess
import sys

import numpy as np

from deepjax.data import images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_detect(tmp_path, input_path, *flags):
  """Runs the program (a failing program ends its process) and returns its last line."""
  workdir = tmp_path / "run"
  workdir.mkdir(exist_ok=True)
  out = tmp_path / "report.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "deepjax", "detect", f"--input={input_path}",
                         f"--workdir={workdir}", f"--json={out}", *flags], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300, check=False)
  err = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and err and err[-1].startswith("error:"), proc.stderr
  assert not out.exists()
  return err[-1]


def test_empty_folder(tmp_path):
  (tmp_path / "empty").mkdir()
  assert "no images or videos" in run_detect(tmp_path, tmp_path / "empty")


def test_corrupt_video(tmp_path):
  bad = tmp_path / "broken.mp4"
  bad.write_bytes(b"\x00\x01 not a video" * 50)
  assert "broken.mp4" in run_detect(tmp_path, bad)


def test_image_without_a_face(tmp_path):
  path = tmp_path / "flat.png"
  images.write_image(str(path), np.full((96, 96, 3), 128, np.uint8))
  assert "no face found" in run_detect(tmp_path, path)


def test_threshold_outside_zero_one(tmp_path):
  (tmp_path / "empty").mkdir()
  assert "--threshold is a probability" in run_detect(tmp_path, tmp_path / "empty",
                                                      "--threshold=1.5")
