"""Preemption and crashes: SIGTERM saves and exits 0, kill -9 keeps the last checkpoint,
half-written checkpoints are ignored, and resumed runs end bit-identical to uninterrupted
ones (the data iterator is checkpointed). Also the non-finite guard's skip mode.

The interrupted runs are real `deepjax train` processes; they use the same
XLA flags and mesh as the in-process reference, so their steps compute the same bits.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax import compile_options
from deepjax.errors import UserError
from deepjax.testing import prepared_data_dir, small_swap_config, tree_equal
from deepjax.train import loop, parallel
from deepjax.train.tasks import ae

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STEPS = 30


def preemption_config(data_dir: str, steps: int = STEPS, checkpoint_every: int = 10):
  c = small_swap_config("faceswap_ae", pathlib.Path(data_dir) / "datasets", steps)
  with c.unlocked():
    c.data.data_dir = data_dir
    c.log_every = 1
    c.checkpoint_every = checkpoint_every
    c.preview_every = 0
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return prepared_data_dir(preemption_config(str(tmp_path_factory.getbasetemp())))


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
  """Final state of an uninterrupted in-process run."""
  return loop.train_and_evaluate(preemption_config(data_dir),
                                 str(tmp_path_factory.mktemp("reference")))["state"]


def start_training(tmp_path, data_dir: str, checkpoint_every: int) -> subprocess.Popen:
  """`deepjax train` on the small config (stdout piped, line by line)."""
  cfg = tmp_path / "cfg.py"
  cfg.write_text(
      "import sys\n"
      f"sys.path.insert(0, {HERE!r})\n"
      "from test_preemption import preemption_config\n\n"
      "def get_config():\n"
      f"  return preemption_config({data_dir!r}, {STEPS}, {checkpoint_every})\n")
  return subprocess.Popen(
      [sys.executable, "-u", "-m", "deepjax", "train", f"--config={cfg}",
       f"--workdir={tmp_path / 'run'}"], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


def read_until(proc, prefix: str, timeout: float = 300) -> list[str]:
  """Lines of `proc` up to and including the first starting with `prefix`."""
  lines, t0 = [], time.monotonic()
  for line in proc.stdout:
    lines.append(line.rstrip())
    if line.startswith(prefix):
      return lines
    if time.monotonic() - t0 > timeout:
      break
  proc.kill()
  pytest.fail(f"no line {prefix!r}:\n" + "\n".join(lines[-30:]))
  return lines


def assert_same_bits(got, want, context):
  diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
           for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  assert tree_equal(got, want), (context, max(diffs))


def finished_steps(workdir) -> list[int]:
  folder = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_sigterm_saves_exits_zero_and_resumes_bit_identically(tmp_path, data_dir, reference,
                                                              logged):
  proc = start_training(tmp_path, data_dir, checkpoint_every=10)
  read_until(proc, "step 2/")
  proc.send_signal(signal.SIGTERM)
  rest, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, rest
  stopped = [l for l in rest.splitlines() if l.startswith("stop signal received: saved step ")]
  assert stopped, rest
  step = int(stopped[0].split("saved step ")[1].split(";")[0])
  assert 2 <= step < STEPS
  assert finished_steps(tmp_path / "run")[-1] == step

  resumed = loop.train_and_evaluate(preemption_config(data_dir), str(tmp_path / "run"))
  assert f"resumed from step {step}" in logged.text
  assert resumed["step"] == STEPS
  assert_same_bits(resumed["state"].params, reference.params, f"stopped at {step}")
  assert_same_bits(resumed["state"].opt_state, reference.opt_state, f"stopped at {step}")


@pytest.mark.slow
def test_kill9_keeps_last_checkpoint_and_resumes_bit_identically(tmp_path, data_dir, reference,
                                                                 logged):
  kill_after = int(np.random.default_rng().integers(3, 9))
  proc = start_training(tmp_path, data_dir, checkpoint_every=1)  # saving all the time
  read_until(proc, f"step {kill_after}/")
  proc.kill()  # SIGKILL: no handler, no cleanup, possibly in the middle of a save
  proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  run = tmp_path / "run"
  done = finished_steps(run)
  # The step line is printed before that step's save: the kill may cut that save.
  assert done and done[-1] >= kill_after - 1, (kill_after, done)

  # A save cut short: the next step's temporary folder with a truncated file.
  ckpts = run / "checkpoints"
  tmp = ckpts / f"{done[-1] + 1}.orbax-checkpoint-tmp-1234567"
  shutil.copytree(ckpts / str(done[-1]), tmp)
  for f in sorted(p for p in tmp.rglob("*") if p.is_file())[:3]:
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])

  cfg = preemption_config(data_dir)
  resumed = loop.train_and_evaluate(cfg, str(run))
  assert f"resumed from step {done[-1]}" in logged.text, (kill_after, done)
  assert not tmp.exists()  # stale temporaries are removed when the manager opens
  assert resumed["step"] == STEPS
  assert_same_bits(resumed["state"].params, reference.params, (kill_after, done))
  assert_same_bits(resumed["state"].opt_state, reference.opt_state, (kill_after, done))


# --- non-finite guard -------------------------------------------------------------

BAD_STEPS = (2, 5)  # state.step values whose loss (and gradients) are NaN


class NanAETask(ae.AETask):
  """The AE task, with a NaN loss at the steps in BAD_STEPS (test only)."""

  def train_step(self, state, batch):
    self._scale = jnp.where(jnp.isin(state.step, jnp.asarray(BAD_STEPS)), jnp.nan, 1.0)
    return super().train_step(state, batch)

  def loss_fn(self, params, batch, key, step=0):
    total, metrics = super().loss_fn(params, batch, key, step)
    return total * self._scale, {**metrics, "loss": total * self._scale}


def test_skip_mode_skips_and_counts_nonfinite_steps(tmp_path, data_dir, monkeypatch):
  steps = 8
  c = preemption_config(data_dir, steps=steps)
  with c.unlocked():
    c.nonfinite = "skip"
  monkeypatch.setattr(loop, "build_task", NanAETask)
  out = loop.train_and_evaluate(c, str(tmp_path / "skip"))
  assert out["step"] == steps
  assert out["metrics"]["skipped_steps"] == len(BAD_STEPS)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(out["state"].params))

  # Reference: the plain step, with the bad steps left out by hand (state kept,
  # step counter advanced, their batches consumed).
  task = ae.AETask(c)
  mesh = parallel.make_mesh(1)
  it = task.data_iterator(c, c.batch_size, c.seed, "train")
  state, _, _ = loop.init_state(task, c, mesh, parallel.to_global(next(it), mesh))
  it = task.data_iterator(c, c.batch_size, c.seed, "train")
  plain = compile_options.jit(task.train_step)  # as the loop compiles it
  for i in range(steps):
    batch = parallel.to_global(next(it), mesh)
    if i in BAD_STEPS:
      state = state.replace(step=state.step + 1)
    else:
      state, _ = plain(state, batch)
  for got, want in zip(jax.tree.leaves(out["state"].params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_stop_mode_nan_raises_and_keeps_good_checkpoint(tmp_path, data_dir, monkeypatch):
  c = preemption_config(data_dir, steps=10, checkpoint_every=2)
  monkeypatch.setattr(loop, "build_task", NanAETask)  # NaN at step 3 (state.step 2)
  with pytest.raises(UserError, match="non-finite loss at step 3"):
    loop.train_and_evaluate(c, str(tmp_path / "stop"))
  assert finished_steps(tmp_path / "stop") == [2]


if __name__ == "__main__":
  sys.exit("run with pytest")
