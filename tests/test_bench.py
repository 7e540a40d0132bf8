"""Benchmark registry, result schema and timing helper (`deepjax.bench`, `deepjax bench`)."""
import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest

from deepjax.bench import registry, timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = {f.name for f in dataclasses.fields(timing.Result)}


@pytest.mark.parametrize("name", list(registry.ROWS))
def test_every_row_imports_and_takes_its_arguments(name):
  row = registry.ROWS[name]
  fn = row.function()
  inspect.signature(fn).bind(**row.kwargs)  # TypeError when a registered argument is wrong
  if row.takes_steps:
    assert "steps" in inspect.signature(fn).parameters
  assert inspect.signature(fn).return_annotation in (timing.Result, "Result")


def test_default_rows_are_registered():
  assert set(registry.DEFAULT_ROWS) <= set(registry.ROWS)


def test_time_calls_warms_up_then_times_and_threads_the_carry():
  calls = []

  def step(state, x):
    calls.append(state)
    return state + x, state * 10

  t = timing.time_calls(step, 0, 2, repeats=3, warmup=2, carry=1)
  assert calls == [0, 2, 4, 6, 8]  # two warm-up calls, three timed, state carried through
  assert len(t.warmup_seconds) == 2 and len(t.seconds) == len(t.cpu_seconds) == 3
  assert t.last == (10, 80)
  assert t.best <= t.median <= max(t.seconds)


def test_run_row_returns_the_schema():
  r = registry.run_row("matmul", {"n": 64, "repeats": 2})
  assert isinstance(r, timing.Result) and r.row == "matmul"
  assert r.gflops > 0 and r.step_s > 0 and r.peak_rss_mb > 0 and r.extra == {"n": 64}
  r = registry.run_row("data_video", {"width": 32, "height": 32, "frames": 3})
  assert r.row == "data_video" and r.images_per_s > 0 and r.extra["frames"] == 3


def bench(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "deepjax", "bench", *args], capture_output=True,
                        text=True, env=env, cwd=REPO, check=False)


def test_program_rejects_bad_rows_and_row_args(tmp_path):
  for args, message in ((["--rows=nope,data_video", "--row_arg=bogus=1"], "unknown rows"),
                        (["--rows=data_video", "--row_arg=bogus=1"], "bogus"),
                        (["--row_arg=frames"], "KEY=VALUE")):
    p = bench(*args, f"--json={tmp_path / 'b.json'}")
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr
  assert not (tmp_path / "b.json").exists()


@pytest.mark.slow
def test_program_runs_rows_with_arguments(tmp_path):
  out = tmp_path / "bench.json"
  p = bench("--rows=data_video", f"--json={out}", "--row_arg=n=128", "--row_arg=frames=3",
            "--row_arg=width=32", "--row_arg=height=32")
  assert p.returncode == 0, p.stderr[-2000:]
  rows = json.loads(out.read_text())["rows"]
  assert [r["row"] for r in rows] == ["matmul", "data_video"]
  assert all(set(r) == SCHEMA for r in rows)
  assert rows[0]["extra"] == {"n": 128} and rows[1]["extra"]["frames"] == 3
  assert "data_video" in p.stdout and "decode 32x32" in p.stdout
