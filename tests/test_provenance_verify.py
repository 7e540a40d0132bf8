"""deepjax.provenance.verify: verdicts for marked, unmarked, tampered, re-encoded, corrupt files."""
import json
import os
import subprocess
import sys

import imageio_ffmpeg
import pytest

from deepjax.data.video import write_image, write_video
from deepjax.errors import UserError
from deepjax.provenance import Provenance, credentials
from deepjax.provenance.verify import verify_file
from provenance_scene import scene

FINGERPRINT = "5eed1234" + "0" * 56
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """Paths of a marked+signed mp4 and png, an unmarked mp4, a tampered and a re-encoded copy."""
  folder = tmp_path_factory.mktemp("verify")
  mp = pytest.MonkeyPatch()
  mp.setenv("XDG_CONFIG_HOME", str(folder / "config"))
  frames = scene(3, 2, 256)
  prov = Provenance(credentials.COMPOSITE, "autoencoder", FINGERPRINT)
  paths = {k: str(folder / v) for k, v in (("marked", "m.mp4"), ("image", "m.png"),
                                           ("unmarked", "u.mp4"), ("tampered", "t.mp4"),
                                           ("reencoded", "r.mp4"), ("corrupt", "c.mp4"))}
  marked = prov.mark_frames(frames)
  write_video(paths["marked"], marked, 25)
  prov.sign(paths["marked"], size=(256, 256))
  write_image(paths["image"], marked[0])
  prov.sign(paths["image"])
  write_video(paths["unmarked"], frames, 25)
  data = bytearray(open(paths["marked"], "rb").read())
  mdat = data.find(b"mdat")
  data[mdat + (len(data) - mdat) // 2] ^= 0xFF
  open(paths["tampered"], "wb").write(bytes(data))
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", paths["marked"],
                  "-c:v", "libx264", "-crf", "28", paths["reencoded"]], check=True)
  open(paths["corrupt"], "wb").write(b"\x00\x01not a video" * 50)
  yield paths
  mp.undo()


@pytest.mark.parametrize("name,verdict,c2pa_valid,mark_found", [
    ("marked", "marked", True, True),
    ("image", "marked", True, True),
    ("unmarked", "unmarked", False, False),
    ("tampered", "tampered", False, True),
    ("reencoded", "marked", False, True),
])
def test_verdicts(files, name, verdict, c2pa_valid, mark_found):
  result = verify_file(files[name])
  assert result["verdict"] == verdict
  assert result["c2pa"]["valid"] == c2pa_valid
  assert result["watermark"]["found"] == mark_found
  assert result["watermark"]["frame_size"] == [256, 256] and not result["watermark"]["too_small"]
  if mark_found:
    assert result["watermark"]["payload"] == "5eed1234"
    assert result["watermark"]["false_positive_rate"] < 1e-6
  if c2pa_valid:
    assert result["c2pa"]["run_fingerprint"] == FINGERPRINT
    assert result["watermark"]["matches_manifest"]


def test_frames_too_small_for_the_pixel_mark_are_said_to_be(tmp_path, monkeypatch):
  """A 64 px image (the demo's crops) is marked by its manifest; its watermark is reported
  as too small to read, not merely as absent."""
  from deepjax.cli.verify import line  # pylint: disable=import-outside-toplevel
  from deepjax.provenance import watermark  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
  assert watermark.min_readable_side(watermark.WatermarkConfig()) == 72  # the tile, halved
  prov = Provenance(credentials.COMPOSITE, "autoencoder", FINGERPRINT)
  path = str(tmp_path / "small.png")
  write_image(path, prov.mark_frames(scene(1, 2, 64))[0])
  prov.sign(path)
  result = verify_file(path)
  assert result["verdict"] == "marked" and result["c2pa"]["valid"]
  mark = result["watermark"]
  assert not mark["found"] and mark["too_small"] and mark["frame_size"] == [64, 64]
  assert "64x64 px frames are too small to carry a readable pixel mark" in line(result)


def test_unreadable_input_is_user_error(files, tmp_path):
  for path in (files["corrupt"], str(tmp_path / "missing.mp4")):
    with pytest.raises(UserError):
      verify_file(path)


def _verify_cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "deepjax", "verify", *args], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300, check=False)


@pytest.mark.slow
def test_verify_program_exit_status(files):
  p = _verify_cli(files["marked"], files["reencoded"])
  assert p.returncode == 0, p.stderr
  lines = p.stdout.strip().splitlines()
  assert len(lines) == 2 and all(": marked;" in l and "5eed1234" in l for l in lines)
  p = _verify_cli("--json", files["marked"], files["unmarked"], files["tampered"])
  assert p.returncode == 1, p.stderr
  assert [r["verdict"] for r in json.loads(p.stdout)] == ["marked", "unmarked", "tampered"]
  p = _verify_cli(files["marked"], files["corrupt"])
  assert p.returncode == 2 and "unreadable" in p.stderr
