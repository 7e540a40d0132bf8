"""The README's programs end to end: demo, swap (image mode), bench."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepjax import testing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, timeout=900):
  env = testing.program_env()  # programs see the real device count
  return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                        env=env, cwd=REPO, timeout=timeout, check=False)


@pytest.mark.slow
def test_demo_then_swap_images(tmp_path):
  work = tmp_path / "demo"
  p = run("deepjax", "demo", f"--workdir={work}", "--steps=4", "--frames=8")
  assert p.returncode == 0, p.stderr[-2000:]
  for name in ("preview.png", "swap_a2b.mp4", "metrics.json"):
    assert (work / name).exists(), name
  metrics = json.loads((work / "metrics.json").read_text())
  for motion in ("poses", "clip"):
    for direction in ("a2b", "b2a"):
      rows = metrics["results"][motion][direction]
      assert set(rows) == {"model", "input", "mean_face", "face_paste"}
      assert all(np.isfinite(r["psnr"]) and np.isfinite(r["face_psnr"]) for r in rows.values())
  assert "mean face" in p.stdout and "model beats both baselines" in p.stdout
  from deepjax.provenance.verify import verify_file
  marks = verify_file(str(work / "swap_a2b.mp4"))
  assert marks["c2pa"]["valid"] and marks["watermark"]["found"], marks

  faces = tmp_path / "faces"
  faces.mkdir()
  Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(faces / "one.png")
  Image.fromarray(np.full((64, 64), 90, np.uint8)).save(faces / "gray.jpg")
  (faces / "broken.png").write_bytes(b"not an image")
  out = tmp_path / "swapped"
  p = run("deepjax", "swap", f"--workdir={work}", f"--input={faces}", f"--output={out}",
          "--direction=a2b")
  assert p.returncode == 0, p.stderr[-2000:]
  assert sorted(os.listdir(out)) == ["gray.png", "masks", "one.png"]  # no alignments.json in
  assert sorted(os.listdir(out / "masks")) == ["gray.png", "one.png"]  # -> none written out
  assert Image.open(out / "one.png").size == (50, 40)  # written back at the input's size
  from deepjax.provenance.verify import read_c2pa
  assert read_c2pa(str(out / "one.png"))["digital_source_type"] == "trainedAlgorithmicMedia"
  assert "skip:" in p.stdout

  p = run("deepjax", "swap", f"--workdir={work}", f"--input={tmp_path / 'missing'}",
          f"--output={out}")
  assert p.returncode == 2 and p.stderr.strip().startswith("error:")


def test_swap_bad_workdir(tmp_path):
  p = run("deepjax", "swap", f"--workdir={tmp_path / 'nothing'}", f"--input={tmp_path}",
          f"--output={tmp_path / 'o'}")
  assert p.returncode == 2 and "error:" in p.stderr and "Traceback" not in p.stderr
  assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_bench_prints_table_and_json(tmp_path):
  out = tmp_path / "bench.json"
  p = run("deepjax", "bench", "--rows=ae_seeds", "--steps=1", f"--json={out}")
  assert p.returncode == 0, p.stderr[-2000:]
  assert "matmul" in p.stdout and "train faceswap_ae:seeds" in p.stdout
  data = json.loads(out.read_text())
  assert data["matmul_gflops"] > 0
  row = [r for r in data["rows"] if r["row"] == "ae_seeds"][0]
  assert row["note"] == "train faceswap_ae:seeds"
  assert row["images_per_s"] > 0 and row["gflops"] > 0
  assert 0 < row["extra"]["fraction_of_matmul_peak"]
  p = run("deepjax", "bench", "--rows=nope")
  assert p.returncode == 2 and "unknown rows" in p.stderr


def _corrupt_runs(tmp_path):
  """Two copies of a small face-swap checkpoint: one whose largest state file is cut in
  half, one whose state metadata file is removed. Returns {name: (run folder, step folder)}."""
  from deepjax.configs_lib import load_config
  from deepjax.train import checkpoint
  manager = checkpoint.make_manager(str(tmp_path / "good"))
  state = {"step": np.zeros((), np.int32),
           "params": {"w": np.arange(50_000, dtype=np.float32)}}
  checkpoint.save(manager, 0, state, {}, load_config("faceswap_ae", "tiny"))
  manager.close()
  runs = {}
  for name in ("cut", "no_metadata"):
    shutil.copytree(tmp_path / "good", tmp_path / name)
    state_dir = tmp_path / name / "checkpoints" / "0" / "state"
    if name == "cut":
      biggest = max((p for p in state_dir.rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
      biggest.write_bytes(biggest.read_bytes()[:biggest.stat().st_size // 2])
    else:
      (state_dir / "_METADATA").unlink()
    runs[name] = (tmp_path / name, state_dir.parent)
  return runs


def test_swap_corrupt_checkpoint_is_named(tmp_path):
  """A truncated or incomplete checkpoint: one error line naming it, exit 2, no output."""
  faces = tmp_path / "faces"
  faces.mkdir()
  Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(faces / "one.png")
  env = testing.program_env()  # programs see the real device count
  runs = _corrupt_runs(tmp_path)
  procs = {name: subprocess.Popen(
      [sys.executable, "-m", "deepjax", "swap", f"--workdir={run_dir}", f"--input={faces}",
       f"--output={tmp_path / ('out_' + name)}"], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for name, (run_dir, _) in runs.items()}
  for name, p in procs.items():
    _, stderr = p.communicate(timeout=300)
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert p.returncode == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: checkpoint is corrupt or incomplete ("), stderr
    assert lines[0].endswith(f"): {runs[name][1]}"), stderr
    assert not (tmp_path / ("out_" + name)).exists()


def test_closed_loop_reports_are_dropped_from_before_the_read(tmp_path, monkeypatch):
  """Reads still in flight when a restore fails report 'Event loop is closed' from orbax's
  threads, possibly before the failure reaches deepjax: the filter is in place while the
  checkpoint is read, drops only those reports, and the failure is a UserError."""
  import orbax.checkpoint as ocp
  from deepjax import loading
  from deepjax.errors import UserError
  seen, during_read = [], []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  real_restore = ocp.StandardCheckpointer.restore

  def restore(self, *args, **kwargs):
    during_read.append(getattr(sys.unraisablehook, "drops_closed_loop", False))
    return real_restore(self, *args, **kwargs)

  monkeypatch.setattr(ocp.StandardCheckpointer, "restore", restore)
  runs = _corrupt_runs(tmp_path)
  with pytest.raises(UserError, match="corrupt or incomplete"):
    loading.load_state(str(runs["cut"][0]))
  assert during_read == [True]
  report = lambda exc: type("U", (), {"exc_type": type(exc), "exc_value": exc})()
  sys.unraisablehook(report(RuntimeError("Event loop is closed")))
  sys.unraisablehook(report(RuntimeError("something else")))
  assert [str(u.exc_value) for u in seen] == ["something else"]
