"""Orbax checkpoints: the train state, the data iterator's state and the config.

Layout of `<workdir>/checkpoints/<step>/`: `state` (a plain array pytree:
TrainState fields), `data` (JSON: the grain iterator state of every process),
`config` (JSON: the full config). Another JAX project restores the parameters
with `orbax.checkpoint` alone (see `deepjax.load`).

Saving is atomic in orbax (it writes `<step>.orbax-checkpoint-tmp-*` and renames
it to `<step>` when complete), so a run killed mid-save (kill -9, power loss)
keeps its previous checkpoint; the half-written temporary folder is ignored by
`latest_step()` and removed when the next run opens the manager.

Multi-host: every process calls `save`/`restore` (orbax coordinates them; the
workdir must be one folder all hosts see: a shared filesystem or a bucket).
"""
import json
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from deepjax.errors import UserError, first_line

# Config sections whose change makes an old checkpoint unusable.
STRUCTURAL_KEYS = ("task", "model")


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, max_to_keep: int = 3,
                 subdir: str = "checkpoints") -> ocp.CheckpointManager:
  """Orbax manager of `<workdir>/<subdir>` (synchronous saves; stale temporaries removed)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), subdir), options=options,
                               item_names=("state", "data", "config"))


def config_to_json(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") \
      else json.loads(json.dumps(config))


def save(manager, step: int, state, data_state, config) -> None:
  """Saves `state` (pytree), `data_state` (JSON-able) and `config` at `step`."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(data_state),
      config=ocp.args.JsonSave(config_to_json(config))))
  manager.wait_until_finished()


def read_config(manager, step: int) -> dict:
  return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def check_compatible(saved_config: dict, config, workdir: str) -> None:
  """UserError when the checkpoint was written by another task or model config."""
  current = config_to_json(config)
  for key in STRUCTURAL_KEYS:
    if saved_config.get(key) != current.get(key):
      a, b = saved_config.get(key), current.get(key)
      diff = ""
      if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        diff = " (differs in: " + ", ".join(f"{key}.{k}" for k in keys[:5]) + ")"
      raise UserError(f"the checkpoint in {workdir} was written with a different '{key}' "
                      f"config{diff}; use another run folder or the original config")


def restore(manager, step: int, abstract_state):
  """Restores (state, data_state) at `step` into the shardings of `abstract_state`.

  UserError when the checkpoint does not fit the config, or when its files cannot be read
  (cut or damaged): that one names the step folder to move aside, which resumes from the
  step before, and nothing is deleted.
  """
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  loading.drop_closed_loop_reports()
  try:
    out = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"checkpoint at step {step} does not fit this config: "
                    f"{first_line(e)}") from e
  except Exception as e:  # pylint: disable=broad-except  (any failure to read the files)
    step_dir = os.path.join(str(manager.directory), str(step))
    earlier = [s for s in manager.all_steps() if s < step]
    then = f"resume from step {max(earlier)}" if earlier else "start afresh"
    raise UserError(f"checkpoint at step {step} is corrupt or incomplete ({first_line(e, 100)}); "
                    f"move {step_dir} aside to {then}") from e
  return out["state"], out["data"]


def abstract_with_sharding(shapes, shardings):
  """ShapeDtypeStructs of `shapes` placed with `shardings` (a tree like `shapes`)."""
  return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                      shapes, shardings)


def config_from_dict(d: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(d)


def warm_start(state, path: str, state_sharding):
  """`state` with its params and model_state (e.g. BatchNorm statistics) taken from the
  newest checkpoint under run folder `path` (`config.init_from`): fine-tuning from a
  pretrained run. Step, optimizer state and RNG stay those of `state` (a fresh start).
  UserError naming the first difference when the two models' weights differ in names or
  shapes (e.g. another architecture or resolution)."""
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  named = lambda tree: {jax.tree_util.keystr(k): v  # noqa: E731
                        for k, v in jax.tree_util.tree_leaves_with_path(tree)}
  saved = loading.load_state(path)
  fields = {}
  for field in ("params", "model_state"):
    ours, theirs = getattr(state, field), named(saved.get(field) or {})
    want = {k: v.shape for k, v in named(ours).items()}
    got = {k: v.shape for k, v in theirs.items()}
    for name in sorted(set(want) | set(got)):
      if want.get(name) != got.get(name):
        raise UserError(f"init_from {path}: its {field}{name} is "
                        f"{got.get(name, 'missing')}, this config's is "
                        f"{want.get(name, 'missing')} (the same model config is needed)")
    if want:
      fields[field] = jax.device_put(jax.tree_util.tree_map_with_path(
          lambda k, old: theirs[jax.tree_util.keystr(k)].astype(old.dtype), ours),
                                     getattr(state_sharding, field))
  return state.replace(**fields)


def gather_data_states(local: dict) -> dict:
  """Every process's iterator state, so any process count can find its own."""
  if jax.process_count() == 1:
    return local
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  blob = json.dumps(local).encode()
  size = multihost_utils.process_allgather(np.array([len(blob)]))
  width = int(np.max(size))
  buf = np.zeros((width,), np.uint8)
  buf[:len(blob)] = np.frombuffer(blob, np.uint8)
  allb = multihost_utils.process_allgather(buf)
  out = {}
  for row, n in zip(np.asarray(allb).reshape(-1, width), np.asarray(size).reshape(-1)):
    out.update(json.loads(bytes(row[:int(n)]).decode()))
  return out
