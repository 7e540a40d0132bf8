"""Scaling pieces: the collectives of one 8-device step, mixed precision, and how
`maybe_initialize_distributed` reads flags and cluster environments."""
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.testing import prepared_data_dir, small_swap_config
from deepjax.train import loop, parallel
from deepjax.train.tasks import build_task

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# XLA packs the per-step all-reduces into this many ops for the small config on CPU
# (docs/scaling.md, "Collectives of one step").
CPU_ALL_REDUCE_OPS = 3


def fake_swap_batch(b: int, size: int) -> dict:
  rng = np.random.default_rng(0)
  return {"a": rng.integers(0, 256, (b, size, size, 3), np.uint8),
          "b": rng.integers(0, 256, (b, size, size, 3), np.uint8),
          "a_landmarks": rng.uniform(-1, 1, (b, 68, 2)).astype(np.float32),
          "b_landmarks": rng.uniform(-1, 1, (b, 68, 2)).astype(np.float32),
          "a_has_landmarks": np.ones((b,), bool), "b_has_landmarks": np.ones((b,), bool)}


def hlo_collectives(hlo: str) -> dict:
  """{op name: [list of operand (dtype, shape) per op]} of the collectives in HLO text."""
  out = collections.defaultdict(list)
  for line in hlo.splitlines():
    m = re.search(r"=\s*(\(.*?\)|\S+)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(", line)
    if m:
      shapes = [(dt, tuple(int(d) for d in dims.split(",") if d))
                for dt, dims in re.findall(r"(\w+)\[([\d,]*)\]", m.group(1))]
      out[m.group(2)].append(shapes)
  return dict(out)


def test_one_gradient_all_reduce_per_step_on_8_devices(tmp_path):
  c = small_swap_config("faceswap_ae", tmp_path / "datasets", mesh_devices=8)
  task = build_task(c)
  mesh = parallel.make_mesh(8)
  batch = parallel.to_global(fake_swap_batch(c.batch_size, c.data.size), mesh)
  state, _, state_sharding = loop.init_state(task, c, mesh, batch)
  step = loop.compile_train_step(task, state_sharding, parallel.batch_sharding(mesh),
                                 parallel.replicated(mesh))
  ops = hlo_collectives(step.lower(state, batch).compile().as_text())

  assert set(ops) == {"all-reduce"}, {k: len(v) for k, v in ops.items()}
  reduced = [s for op in ops["all-reduce"] for s in op]

  def shapes(tree):
    return collections.Counter((str(p.dtype).replace("float32", "f32"), p.shape)
                               for p in jax.tree.leaves(tree))
  # Each gradient is all-reduced exactly once: the shared encoder sees A's and B's faces
  # in one call (AETask.encode_identities), the decoders once each.
  assert collections.Counter(s for s in reduced if s[1]) == shapes(state.params)
  scalars = [s for s in reduced if not s[1]]
  assert 1 <= len(scalars) <= 8, scalars  # the loss terms and metrics
  assert len(ops["all-reduce"]) == CPU_ALL_REDUCE_OPS


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params_and_learns(tmp_path, logged):
  c = small_swap_config("faceswap_ae", tmp_path / "datasets", 30, model={"dtype": "bfloat16"})
  with c.unlocked():
    c.data.data_dir = prepared_data_dir(c)
    c.preview_every = 0
  task = build_task(c)
  batch = {k: jnp.asarray(v) for k, v in fake_swap_batch(4, c.data.size).items()}
  state = jax.eval_shape(task.init, jax.random.key(0), batch)
  jaxpr = str(jax.make_jaxpr(task.loss_fn)(state.params, batch, jax.random.key(1)))
  assert "bf16" in jaxpr  # convolutions run in bfloat16
  loss, metrics = jax.eval_shape(task.loss_fn, state.params, batch, jax.random.key(1))
  assert loss.dtype == jnp.float32 and metrics["loss"].dtype == jnp.float32

  out = loop.train_and_evaluate(c, str(tmp_path / "run"))
  assert {x.dtype for x in jax.tree.leaves(out["state"].params)} == {jnp.dtype("float32")}
  lines = [l for l in logged.lines if l.startswith("step ")]
  losses = [float(l.split("| loss ")[1].split()[0]) for l in lines]
  assert all(np.isfinite(losses)) and len(losses) == 6
  assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


# --- jax.distributed start-up -----------------------------------------------------

@pytest.fixture
def init_calls(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
  monkeypatch.setattr(jax.config, "update", lambda *a: None)
  for var in ("DEEPJAX_COORDINATOR", "DEEPJAX_NUM_PROCESSES", "DEEPJAX_PROCESS_ID",
              "DEEPJAX_DISTRIBUTED", "SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NTASKS",
              "TPU_WORKER_HOSTNAMES", "DEEPJAX_LOCAL_DEVICE_IDS"):
    monkeypatch.delenv(var, raising=False)
  return calls


def test_single_process_does_not_initialize(init_calls, monkeypatch):
  assert not parallel.maybe_initialize_distributed()
  monkeypatch.setenv("SLURM_JOB_ID", "7")  # an salloc shell, one task: no srun step
  monkeypatch.setenv("SLURM_NTASKS", "1")
  assert not parallel.maybe_initialize_distributed()
  assert init_calls == []


def test_flags_and_env_initialize_explicitly(init_calls, monkeypatch):
  assert parallel.maybe_initialize_distributed("h:1234", 2, 1)
  monkeypatch.setenv("DEEPJAX_COORDINATOR", "h:99")
  monkeypatch.setenv("DEEPJAX_NUM_PROCESSES", "4")
  monkeypatch.setenv("DEEPJAX_PROCESS_ID", "3")
  assert parallel.maybe_initialize_distributed()
  assert [c[1] for c in init_calls] == [
      {"coordinator_address": "h:1234", "num_processes": 2, "process_id": 1},
      {"coordinator_address": "h:99", "num_processes": 4, "process_id": 3}]


@pytest.mark.parametrize("env", [
    {"DEEPJAX_DISTRIBUTED": "auto"},
    {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "16"},
    {"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5"},
])
def test_clusters_initialize_without_arguments(init_calls, monkeypatch, env):
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  assert parallel.maybe_initialize_distributed()
  assert init_calls == [((), {})]
  monkeypatch.setenv("DEEPJAX_DISTRIBUTED", "0")
  assert not parallel.maybe_initialize_distributed()
  assert len(init_calls) == 1


def test_one_process_per_node_names_its_gpus(init_calls, monkeypatch):
  monkeypatch.setenv("DEEPJAX_DISTRIBUTED", "auto")
  monkeypatch.setenv("DEEPJAX_LOCAL_DEVICE_IDS", "0,1,2,3")
  assert parallel.maybe_initialize_distributed()
  assert init_calls == [((), {"local_device_ids": [0, 1, 2, 3]})]
  monkeypatch.setenv("DEEPJAX_LOCAL_DEVICE_IDS", "all")
  with pytest.raises(UserError, match="DEEPJAX_LOCAL_DEVICE_IDS"):
    parallel.maybe_initialize_distributed()


@pytest.mark.parametrize("args", [("h:1", None, 0), ("h:1", 2, None), (None, 2, 0), ("h:1", 2, 2)])
def test_incomplete_flags_are_user_errors(init_calls, args):
  with pytest.raises(UserError):
    parallel.maybe_initialize_distributed(*args)
  assert init_calls == []


def test_global_batch_splits_over_devices_and_processes():
  mesh = parallel.make_mesh(8)
  assert parallel.host_batch_size(16, mesh) == 16  # one process holds all 8 devices
  with pytest.raises(UserError, match="multiple of the device count"):
    parallel.host_batch_size(12, mesh)
