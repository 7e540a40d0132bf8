"""Re-encoded crop folders (deepjax.eval.reencode): the detection matrix's CRF columns."""
import json
import os

import numpy as np
import pytest

from deepjax.data import images, video
from deepjax.errors import UserError
from deepjax.eval import reencode

SIZE = 32


def _crops(folder, rng):
  """Two clips of 5 crops each (named out of frame order) with a mask for one crop."""
  os.makedirs(os.path.join(folder, "masks"))
  y, x = np.mgrid[:SIZE, :SIZE]
  faces = []
  for c, clip in enumerate(("b_clip", "a_clip")):
    for frame in (4, 0, 3, 1, 2):
      base = 128 + 60 * np.sin((x + 3 * frame) / 5.0 + c)[..., None] * np.array([1, .7, .4])
      img = np.clip(base + rng.normal(0, 12, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
      name = f"{clip}_{frame}.jpg"
      images.write_image(os.path.join(folder, name), img, quality=100)
      faces.append({"file": name, "source": f"/videos/{clip}.mp4", "frame": frame,
                    "identity": clip})
  images.write_image(os.path.join(folder, "masks", "a_clip_0.jpg"),
                     np.full((SIZE, SIZE), 255, np.uint8))
  with open(os.path.join(folder, "alignments.json"), "w", encoding="utf-8") as f:
    json.dump({"faces": faces}, f)


def _error(src, dst, name):
  a = images.read_image(os.path.join(src, name)).astype(np.float64)
  b = images.read_image(os.path.join(dst, os.path.splitext(name)[0] + ".png"))
  return float(np.mean(np.abs(a - b)))


def test_reencode_folder_keeps_names_labels_and_masks(tmp_path):
  src = str(tmp_path / "crops")
  _crops(src, np.random.default_rng(0))
  groups = reencode.clip_groups(src)
  assert groups == [[f"a_clip_{i}.jpg" for i in range(5)], [f"b_clip_{i}.jpg" for i in range(5)]]
  errors = {}
  for crf in (10, 40):
    dst = str(tmp_path / f"crf{crf}")
    assert reencode.reencode_folder(src, dst, crf) == 10
    with open(os.path.join(dst, "alignments.json"), encoding="utf-8") as f:
      faces = json.load(f)["faces"]
    assert set(os.listdir(dst)) == {e["file"] for e in faces} | {"alignments.json", "masks"}
    assert {e["identity"] for e in faces} == {"a_clip", "b_clip"}
    assert os.listdir(os.path.join(dst, "masks")) == ["a_clip_0.png"]
    errors[crf] = np.mean([_error(src, dst, e["file"].replace(".png", ".jpg")) for e in faces])
  assert 0 < errors[10] < errors[40], errors   # the decoded crops carry the codec's loss


def test_reencode_errors_leave_nothing(tmp_path):
  with pytest.raises(UserError, match="not found"):
    reencode.reencode_folder(str(tmp_path / "missing"), str(tmp_path / "out"), 23)
  os.makedirs(tmp_path / "empty")
  with pytest.raises(UserError, match="no crops"):
    reencode.reencode_folder(str(tmp_path / "empty"), str(tmp_path / "out"), 23)
  frames = np.zeros((2, 16, 16, 3), np.uint8)
  with pytest.raises(UserError, match="crf"):
    video.write_video(str(tmp_path / "x.mp4"), frames, 25, crf=60)
  assert sorted(os.listdir(tmp_path)) == ["empty"]
