"""`deepjax detect`: one-line errors and no output file for inputs without a usable face."""
import os

import numpy as np
import pytest

from deepjax.cli import detect as detect_cli
from deepjax.data import images


def run_detect(tmp_path, capsys, input_path):
  workdir = tmp_path / "run"
  workdir.mkdir(exist_ok=True)
  out = tmp_path / "report.json"
  with pytest.raises(SystemExit) as e:
    detect_cli.run(["deepjax detect", f"--input={input_path}", f"--workdir={workdir}",
                    f"--json={out}"])
  err = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and err and err[-1].startswith("error:"), err
  assert not out.exists()
  return err[-1]


def test_empty_folder(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert "no images or videos" in run_detect(tmp_path, capsys, tmp_path / "empty")


def test_corrupt_video(tmp_path, capsys):
  bad = tmp_path / "broken.mp4"
  bad.write_bytes(b"\x00\x01 not a video" * 50)
  msg = run_detect(tmp_path, capsys, bad)
  assert "broken.mp4" in msg


def test_image_without_a_face(tmp_path, capsys):
  path = tmp_path / "flat.png"
  images.write_image(str(path), np.full((96, 96, 3), 128, np.uint8))
  assert "no face found" in run_detect(tmp_path, capsys, path)
  assert os.path.exists(path)
