"""The training core on the tiny face-swap config: 1 and 8 devices, checkpoints, resume."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from deepjax import testing
from deepjax.errors import UserError
from deepjax.loading import load_params
from deepjax.testing import small_swap_config, tree_equal
from deepjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(tmp_path, steps=30, mesh_devices=1, **model):
  return small_swap_config("faceswap_ae", tmp_path / "datasets", steps, model=model,
                           mesh_devices=mesh_devices)


@pytest.mark.parametrize("devices", [1, 8])
def test_loss_falls_and_checkpoint_restores_bit_identically(tmp_path, devices, logged):
  c = small_config(tmp_path, steps=40, mesh_devices=devices)
  out = loop.train_and_evaluate(c, str(tmp_path / "run"))
  assert out["step"] == 40
  steps = [l for l in logged.lines if l.startswith("step ")]
  losses = [float(l.split("| loss ")[1].split()[0]) for l in steps]
  assert len(losses) == 8
  assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses
  restored = load_params(str(tmp_path / "run"))
  assert tree_equal(restored, out["state"].params)
  assert os.path.exists(tmp_path / "run" / "preview.png")
  assert os.listdir(tmp_path / "run" / "tb")


def test_stopped_run_resumes_from_last_step_bit_identically(tmp_path, logged):
  full = loop.train_and_evaluate(small_config(tmp_path, steps=20), str(tmp_path / "full"))
  loop.train_and_evaluate(small_config(tmp_path, steps=10), str(tmp_path / "split"))
  resumed = loop.train_and_evaluate(small_config(tmp_path, steps=20), str(tmp_path / "split"))
  assert "resumed from step 10" in logged.text
  assert resumed["step"] == 20
  assert tree_equal(resumed["state"].params, full["state"].params)
  assert tree_equal(resumed["state"].opt_state, full["state"].opt_state)


def test_checkpoint_from_another_config_is_refused(tmp_path):
  loop.train_and_evaluate(small_config(tmp_path, steps=2), str(tmp_path / "run"))
  other = small_config(tmp_path, steps=4, latent_dim=32)
  with pytest.raises(UserError, match="different 'model' config"):
    loop.train_and_evaluate(other, str(tmp_path / "run"))


def test_init_from_starts_from_a_runs_weights_with_a_fresh_optimizer(tmp_path, logged):
  """Fine-tuning: a run started with init_from holds the other run's weights (a zero
  learning rate keeps them through its steps) and its own fresh step count; a run of
  another model is refused with one line naming the first differing weight."""
  loop.train_and_evaluate(small_config(tmp_path, steps=4), str(tmp_path / "pre"))
  pre = load_params(str(tmp_path / "pre"))
  tune = small_config(tmp_path, steps=2)
  with tune.unlocked():
    tune.init_from = str(tmp_path / "pre")
    tune.optimizer.learning_rate = 0.0
  out = loop.train_and_evaluate(tune, str(tmp_path / "tune"))
  assert out["step"] == 2 and "(init_from)" in logged.text
  assert tree_equal(jax.device_get(out["state"].params), pre)
  assert tree_equal(load_params(str(tmp_path / "tune")), pre)
  other = small_config(tmp_path, steps=2, latent_dim=32)
  with other.unlocked():
    other.init_from = str(tmp_path / "pre")
  with pytest.raises(UserError, match=r"init_from .*pre: its params\['.*'\].* is \("):
    loop.train_and_evaluate(other, str(tmp_path / "other"))


def test_nonfinite_loss_stops_and_keeps_checkpoint(tmp_path):
  run = str(tmp_path / "run")
  loop.train_and_evaluate(small_config(tmp_path, steps=10), run)
  before = load_params(run)
  bad = small_config(tmp_path, steps=20)
  with bad.unlocked():
    bad.optimizer.learning_rate = float("nan")
  with pytest.raises(UserError, match="non-finite"):
    loop.train_and_evaluate(bad, run)
  assert tree_equal(load_params(run), before)


def test_train_cli_bad_inputs(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cfg = os.path.join(REPO, "configs", "faceswap_ae.py")
  cases = [
      [f"--config={cfg}:tiny", f"--workdir={tmp_path}/w", "--config.no_such_key=1"],
      [f"--config={cfg}:tiny"],
      [f"--config={tmp_path}/missing.py", f"--workdir={tmp_path}/w"],
      [f"--config={cfg}:tiny", f"--workdir={tmp_path}/w", "--config.data.source=folders",
       f"--config.data.a={tmp_path}/nope", f"--config.data.b={tmp_path}/nope"],
  ]
  for args in cases:
    p = subprocess.run([sys.executable, "-m", "deepjax", "train", *args], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert p.returncode != 0, args
    assert "Traceback" not in p.stderr, p.stderr
    err = [l for l in p.stderr.strip().splitlines() if l.strip()]
    assert err and len(err) <= 3, p.stderr


def _run_cli_cases(cases, env):
  """Runs `python -m deepjax train ARGS` for each case at once; returns the finished procs."""
  procs = [subprocess.Popen([sys.executable, "-m", "deepjax", "train", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for args in cases]
  return [(p, *p.communicate(timeout=300)) for p in procs]


def test_train_cli_validates_before_creating_anything(tmp_path):
  """A bad batch size, an unsupported image side and empty face folders: one error line,
  exit 2, and neither the run folder nor a prepared dataset is created."""
  env = testing.program_env()  # programs see the real device count
  cfg = os.path.join(REPO, "configs", "faceswap_ae.py")
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  (tmp_path / "a" / "notes.txt").write_text("not a face\n")
  data_dir = tmp_path / "datasets"
  base = [f"--config={cfg}:tiny", f"--config.data.data_dir={data_dir}"]
  cases = {
      "batch": (["--config.batch_size=-4"],
                "config.batch_size is -4; the batch size must be a positive multiple of the "
                "device count (1)"),
      "size": (["--config.data.size=63"],
               "config.data.size is 63, which the 'original' face-swap model of this config "
               "does not support; the nearest sides it supports are 48 or 64"),
      "folders": (["--config.data.source=folders", f"--config.data.a={tmp_path}/a",
                   f"--config.data.b={tmp_path}/b"],
                  f"no image files in the face folder of identity A (config.data.a): "
                  f"{tmp_path}/a"),
  }
  runs = _run_cli_cases([base + [f"--workdir={tmp_path}/run_{name}"] + args
                         for name, (args, _) in cases.items()], env)
  for (name, (_, message)), (p, _, stderr) in zip(cases.items(), runs):
    assert p.returncode == 2, (name, stderr)
    assert "Traceback" not in stderr, stderr
    assert [l for l in stderr.splitlines() if l.strip()] == [f"error: {message}"], stderr
    assert not (tmp_path / f"run_{name}").exists(), name
  assert not data_dir.exists()


def test_validate_config():
  from deepjax.configs_lib import load_config
  from deepjax.train import validate
  c = load_config("faceswap_ae", "tiny")
  validate.validate(c)
  with c.unlocked():
    c.batch_size = 12
    c.mesh_devices = 8
  with pytest.raises(UserError, match="positive multiple of the device count \\(8\\)"):
    validate.validate(c)
  with c.unlocked():
    c.batch_size, c.data.size = 16, 80  # 4 encoder layers: multiples of 16
  validate.validate(c)
  with c.unlocked():
    c.data.size = 72
  with pytest.raises(UserError, match="supports are 64 or 80"):
    validate.validate(c)
  m = load_config("fomm_vox256", "tiny")  # hourglasses of 3 blocks at scale 0.5: multiples of 16
  validate.validate(m)
  with m.unlocked():
    m.data.size = 40
  with pytest.raises(UserError, match="first-order motion model.*32 or 48"):
    validate.validate(m)


def test_metric_writer_does_not_import_torch(tmp_path):
  """tensorboardX imports torch when it is installed; the loop's writer keeps it out (a
  second of every start) and still writes event files."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  if importlib.util.find_spec("torch") is None:
    pytest.skip("torch is not installed: nothing to keep out")
  code = ("import sys; from deepjax.train import metrics; "
          "w = metrics.MetricWriter(sys.argv[1], enabled=True); w.scalars(1, {'loss': 0.5}); "
          "w.close(); print('torch' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                       text=True, check=True, timeout=120).stdout.split()
  assert out[-1] == "False", out
  assert any(f.startswith("events.out") for f in os.listdir(tmp_path / "tb"))


# orbax leaves the failed read's coroutines unawaited; Python reports them when collected
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_resuming_from_a_damaged_checkpoint_names_it_and_keeps_it(tmp_path):
  """A cut file in the newest checkpoint: a UserError naming its folder and the step to
  resume from once it is moved aside; nothing is deleted."""
  from deepjax.configs_lib import load_config
  from deepjax.train import checkpoint
  manager = checkpoint.make_manager(str(tmp_path))
  state = {"step": np.zeros((), np.int32), "w": np.arange(50_000, dtype=np.float32)}
  for step in (2, 4):
    checkpoint.save(manager, step, state, {}, load_config("faceswap_ae", "tiny"))
  manager.wait_until_finished()
  files = [p for p in (tmp_path / "checkpoints" / "4").rglob("*") if p.is_file()]
  biggest = max(files, key=lambda p: p.stat().st_size)
  biggest.write_bytes(biggest.read_bytes()[:biggest.stat().st_size // 2])
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                          state)
  with pytest.raises(UserError, match=r"step 4 is corrupt or incomplete .*; move .*"
                     r"checkpoints/4 aside to resume from step 2"):
    checkpoint.restore(manager, 4, abstract)
  assert sorted(manager.all_steps()) == [2, 4]
  restored, _ = checkpoint.restore(manager, 2, abstract)
  np.testing.assert_array_equal(restored["w"], state["w"])
