"""The one generic training loop, shared by every task family.

`train_and_evaluate(config, workdir)` builds the task named by `config.task`,
its data iterator, the mesh and shardings, then runs the jitted train step with
donated state. It checkpoints (state + data iterator + config), resumes from
the latest checkpoint in `workdir`, logs to the console and TensorBoard, and
writes preview grids. It never knows which family it runs.
"""
import dataclasses
import math
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax.errors import UserError
from deepjax.train import checkpoint as ckpt
from deepjax.train.held_out import BestCheckpoint, HeldOut
from deepjax.train import metrics as mlib
from deepjax.train import parallel
from deepjax.train import validate
from deepjax.train.tasks import build_task


class _StopFlag:
  """Preemption notice: SIGTERM -> finish the step, save, exit cleanly.

  One process: a Python SIGTERM handler sets the flag. Several processes
  (jax.distributed): JAX's preemption service catches SIGTERM on any process and
  `should_stop(step)` turns True on *every* process at the same step, so all of
  them save the same step together.
  """

  def __init__(self):
    self.stop = False
    self._old = {}
    self._multi = False

  def __enter__(self):
    # jax.distributed.initialize starts the preemption service when this option is on.
    self._multi = jax.process_count() > 1 and bool(jax.config.jax_enable_preemption_service)
    if not self._multi:
      for sig in (signal.SIGTERM,):
        try:
          self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
          pass
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.stop = True

  def should_stop(self, step: int) -> bool:
    """True once a stop was asked for (the same step on every process)."""
    if self._multi and not self.stop:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      self.stop = bool(multihost_utils.reached_preemption_sync_point(step))
    return self.stop

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def _all_finite(tree) -> jax.Array:
  """bool scalar: every inexact leaf of `tree` is finite."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def guarded_step(train_step):
  """Wraps a train step so that a non-finite loss (or update) keeps the old state.

  The step is still counted (`state.step` advances, so the next step draws new
  randomness) and `metrics["skipped"]` is 1.0 for a skipped step (0.0 else).
  A step is skipped when any metric or any new parameter is NaN/Inf.
  """
  def step(state, batch):
    new_state, metrics = train_step(state, batch)
    ok = jnp.logical_and(_all_finite(metrics), _all_finite(new_state.params))
    kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_state, state)
    kept = kept.replace(step=new_state.step)
    metrics = {k: jnp.where(ok, v, jnp.zeros_like(v)) for k, v in metrics.items()}
    metrics["skipped"] = 1.0 - ok.astype(jnp.float32)
    return kept, metrics
  return step


def compile_train_step(task, state_sharding, batch_sharding, repl, nonfinite: str = "stop"):
  """jit(train_step) with donated state and explicit in/out shardings."""
  fn = guarded_step(task.train_step) if nonfinite == "skip" else task.train_step
  return compile_options.jit(fn, donate_argnums=(0,),
                 in_shardings=(state_sharding, batch_sharding),
                 out_shardings=(state_sharding, repl))


def init_state(task, config, mesh, example_batch):
  """(state, shapes, state_sharding): the state made by one jit(init) already replicated
  on the mesh, its ShapeDtypeStructs and its sharding (`repl` for every leaf). One trace of
  init: a model's trace is a large part of a warm start."""
  repl = parallel.replicated(mesh)
  rng = jax.random.key(config.seed)
  state = compile_options.jit_once(task.init, out_shardings=repl)(rng, example_batch)
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  state_sharding = jax.tree.map(lambda _: repl, state)
  return state, shapes, state_sharding


@dataclasses.dataclass
class _Run:
  """What one training run holds: the task, its data, mesh, shardings, state and files."""
  config: Any
  workdir: str
  mesh: Any
  task: Any
  it: Any
  manager: Any
  state: Any
  state_sharding: Any
  guard: str

  @property
  def repl(self):
    return parallel.replicated(self.mesh)

  @property
  def bsharding(self):
    return parallel.batch_sharding(self.mesh)


def _check_config(config) -> str:
  """The non-finite policy; UserError for run-level config values that cannot work."""
  guard = config.get("nonfinite", "stop")
  if guard not in ("stop", "skip"):
    raise UserError(f"config.nonfinite must be 'stop' or 'skip', not {guard!r}")
  if config.get("keep_best") and not int(config.get("eval_every", 0) or 0):
    raise UserError(f"config.keep_best={config.keep_best!r} needs held-out evaluation: set "
                    "config.eval_every to a positive number of steps")
  if str(config.get("best_mode", "max")) not in ("max", "min"):
    raise UserError(f"config.best_mode must be 'max' or 'min', not {config.best_mode!r}")
  if int(config.num_steps) <= 0:
    raise UserError(f"config.num_steps is {int(config.num_steps)}; it must be the positive "
                    "number of training steps to reach (a rerun resumes up to it)")
  return guard


def _setup(config, workdir: str, guard: str) -> _Run:
  """Builds the task, mesh and data; restores the latest checkpoint of `workdir` if any."""
  mesh = parallel.make_mesh(config.get("mesh_devices", 0))
  parallel.warm_up(mesh)
  os.makedirs(workdir, exist_ok=True)
  task = build_task(config)
  host_bs = parallel.host_batch_size(config.batch_size, mesh)
  it = task.data_iterator(config, host_bs, config.seed, "train")
  manager = ckpt.make_manager(workdir, config.get("keep_checkpoints", 3))
  latest = manager.latest_step()
  if latest is not None:
    ckpt.check_compatible(ckpt.read_config(manager, latest), config, workdir)
  start_data_state = it.get_state()
  example = parallel.to_global(next(it), mesh)
  state, shapes, state_sharding = init_state(task, config, mesh, example)
  if latest is not None:
    abstract = ckpt.abstract_with_sharding(shapes, state_sharding)
    state, data_state = ckpt.restore(manager, latest, abstract)
    _resume_data(it, data_state, start_data_state)
    mlib.log(f"resumed from step {int(state.step)} in {workdir}")
  else:
    it.set_state(start_data_state)
    if config.get("init_from"):
      state = ckpt.warm_start(state, config.init_from, state_sharding)
      mlib.log(f"weights from {config.init_from} (init_from); optimizer and step start fresh")
  return _Run(config, workdir, mesh, task, it, manager, state, state_sharding, guard)


def _write_preview(run: _Run, preview_fn, state, batch, step: int, writer) -> None:
  grid = np.asarray(preview_fn(state, batch).addressable_data(0))
  if jax.process_index() == 0:
    mlib.write_png(os.path.join(run.workdir, "previews", f"step_{step:07d}.png"), grid)
    mlib.write_png(os.path.join(run.workdir, "preview.png"), grid)
    writer.image(step, "preview", grid)


def _save(run: _Run, step: int, state, params_finite) -> None:
  if run.guard == "stop" and not bool(params_finite(state.params)):
    raise UserError(f"non-finite parameters at step {step}; stopped without saving: the "
                    f"last good checkpoint in {run.workdir} is kept "
                    "(config.nonfinite='skip' skips such steps instead)")
  data_states = {str(jax.process_index()): run.it.get_state()}
  ckpt.save(run.manager, step, state, ckpt.gather_data_states(data_states), run.config)


def _host_metrics(run: _Run, metrics, step: int, skipped: int) -> dict:
  last = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "skipped"}
  if run.guard == "skip":
    last["skipped_steps"] = float(skipped)
  elif not all(math.isfinite(v) for v in last.values()):
    raise UserError(f"non-finite loss at step {step} ({_fmt(last)}); stopped without "
                    f"saving: the last good checkpoint in {run.workdir} is kept "
                    "(config.nonfinite='skip' skips such steps instead)")
  return last


def _due(every, step: int, total: int, last_if_longer: bool) -> bool:
  """Every `every` steps and at the last step (0 = never). At the last step of a run shorter
  than `every` only when `last_if_longer`."""
  every = int(every or 0)
  at_end = step == total and (last_if_longer or every <= total)
  return every > 0 and (step % every == 0 or at_end)


def _train(run: _Run, stop: _StopFlag, t_start: float) -> tuple[int, dict]:
  """Steps up to config.num_steps (or a stop signal); logs, evaluates, previews, saves."""
  config, task = run.config, run.task
  step_fn = compile_train_step(task, run.state_sharding, run.bsharding, run.repl, run.guard)
  preview_fn = compile_options.jit(task.preview, in_shardings=(run.state_sharding, run.bsharding),
                                   out_shardings=run.repl)
  params_finite = jax.jit(lambda p: _all_finite(p), out_shardings=run.repl)
  held_out = HeldOut(run.task, run.config, run.mesh, run.state_sharding)
  best = BestCheckpoint(run.config, run.workdir)
  writer = mlib.MetricWriter(run.workdir)
  total, state = int(config.num_steps), run.state
  step = first = int(state.step)
  progress = mlib.Progress(total, config.batch_size * task.images_per_example, step)
  last, train_batch, skipped = {}, None, 0
  while step < total:
    batch = parallel.to_global(next(run.it), run.mesh)
    train_batch = batch if train_batch is None else train_batch
    state, metrics = step_fn(state, batch)
    step += 1
    stopping = stop.should_stop(step)
    if step == first + 1:
      jax.block_until_ready(metrics)
      mlib.log(f"first step done {time.perf_counter() - t_start:.1f} s after start "
               "(data, init, compile)")
    do_log = step % config.log_every == 0 or step == total or stopping
    do_save = step % config.checkpoint_every == 0 or step == total or stopping
    if run.guard == "skip":
      skipped += int(jax.device_get(metrics["skipped"]))
    if do_log or do_save:
      last = _host_metrics(run, metrics, step, skipped)
    if do_log:
      mlib.log(progress.line(step, last))
      writer.scalars(step, last)
    if do_save:
      _save(run, step, state, params_finite)
    if stopping:
      mlib.log(f"stop signal received: saved step {step}; rerun the same command to resume")
      break
    if _due(config.get("eval_every", 0), step, total, False):
      evaluated = held_out.evaluate(state)
      if evaluated:
        mlib.log(f"eval step {step}/{total} ({held_out.split}) | {_fmt(evaluated)}")
        writer.scalars(step, {f"eval/{k}": v for k, v in evaluated.items()})
        best.update(step, state, evaluated, run.it)
    if _due(config.preview_every, step, total, True):
      shown = (held_out.batches() or [train_batch])[0]
      _write_preview(run, preview_fn, state, shown, step, writer)
  writer.close()
  best.close()
  run.state = state
  return step, last


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config.task` in `workdir` (resuming if a checkpoint exists).

  `config.batch_size` is the global batch (all devices of all processes); each
  process reads `batch_size / process_count` examples per step from its own
  shard of the data. With several processes (jax.distributed initialized) every
  process calls this with the same config and workdir (a shared filesystem).

  Every `config.eval_every` steps (and at the last step; 0 = never) the task's `eval_step`
  runs on `config.eval_batches` held-out batches (the data's test split); the means are
  logged and written to TensorBoard under `eval/` (`config.eval_split` picks another split,
  e.g. "validation"; with `config.keep_best` naming one of the figures, the checkpoint
  where it was best is kept in `<workdir>/best`). Previews (every `config.preview_every`
  steps) show held-out examples when the data has a test split.

  SIGTERM (preemption) finishes the running step, saves and returns; rerunning
  resumes exactly (same parameters as an uninterrupted run when the process
  count is unchanged). A non-finite loss raises UserError without saving
  (`config.nonfinite="stop"`) or skips that step (`"skip"`).

  Returns {"step": final step, "metrics": last logged metrics (floats), "state": state,
  "stopped": True when a stop signal ended the run early}.
  """
  t_start = time.perf_counter()
  workdir = os.path.abspath(workdir)
  guard = _check_config(config)
  validate.validate(config)  # before anything is created
  with _StopFlag() as stop:
    run = _setup(config, workdir, guard)
    try:
      step, last = _train(run, stop, t_start)
    finally:
      run.manager.close()
  return {"step": step, "metrics": last, "state": run.state, "stopped": stop.stop}


def _resume_data(it, data_state: dict, start_state) -> None:
  """Puts the iterator where the checkpoint left this process's shard."""
  key = str(jax.process_index())
  per_process = isinstance(data_state, dict) and all(k.isdigit() for k in data_state)
  if not per_process:
    it.set_state(data_state)
    return
  if len(data_state) != jax.process_count() or key not in data_state:
    mlib.log(f"the checkpoint was written by {len(data_state)} process(es), this run has "
             f"{jax.process_count()}: parameters resume, the data order starts afresh")
    it.set_state(start_state)
    return
  it.set_state(data_state[key])


def _fmt(d):
  return ", ".join(f"{k}={v:.4g}" for k, v in d.items())
