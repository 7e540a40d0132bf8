"""deepjax's C2PA manifests checked by a second, independent validator (c2pa-ts).

c2pa-python wraps c2pa-rs; c2pa-ts (tools/c2pa-ts, pure TypeScript, pinned) is another
implementation of the specification, and also checks the signing certificate's profile.
Skips where node or the tool's packages are absent (`npm install --prefix tools/c2pa-ts`).
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from deepjax.data.video import write_image, write_video
from deepjax.provenance import credentials

TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "c2pa-ts")
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.isdir(
        os.path.join(TOOL, "node_modules", "@trustnxt", "c2pa-ts")),
    reason="c2pa-ts not installed: npm install --prefix tools/c2pa-ts")


def _check(*paths):
  out = subprocess.run(["node", os.path.join(TOOL, "check.mjs"), *paths],
                       capture_output=True, text=True, timeout=120, check=False)
  return out.returncode, [json.loads(line) for line in out.stdout.splitlines()]


def _flip_middle_byte(path, marker):
  data = bytearray(open(path, "rb").read())
  start = data.find(marker)
  data[start + (len(data) - start) // 2] ^= 0xFF
  open(path, "wb").write(bytes(data))


def test_second_validator_accepts_deepjax_files_and_rejects_tampered(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
  frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
  video, image = str(tmp_path / "swap.mp4"), str(tmp_path / "sample.png")
  write_video(video, frames, 25)
  write_image(image, frames[0])
  credentials.sign_file(video, source_type=credentials.COMPOSITE, model_family="autoencoder",
                        fingerprint="ab" * 32, payload=0x01234567)
  credentials.sign_file(image, source_type=credentials.GENERATED, model_family="fomm",
                        fingerprint="ab" * 32)
  rc, results = _check(video, image)
  assert rc == 0, results
  assert "assertion.bmffHash.match" in results[0]["codes"]
  assert "assertion.dataHash.match" in results[1]["codes"]
  assert all("signingCredential.trusted" in r["codes"] for r in results)  # profile ok
  _flip_middle_byte(video, b"mdat")
  _flip_middle_byte(image, b"IDAT")
  rc, results = _check(video, image)
  assert rc == 1
  assert "assertion.bmffHash.mismatch" in results[0]["codes"] and not results[0]["valid"]
  assert "assertion.dataHash.mismatch" in results[1]["codes"] and not results[1]["valid"]
  unsigned = str(tmp_path / "plain.png")
  write_image(unsigned, frames[1])
  assert _check(unsigned)[1][0]["present"] is False
