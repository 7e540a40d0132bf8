"""The one generic training loop, shared by every task family.

`train_and_evaluate(config, workdir)` builds the task named by `config.task`,
its data iterator, the mesh and shardings, then runs the jitted train step with
donated state. It checkpoints (state + data iterator + config), resumes from
the latest checkpoint in `workdir`, logs to the console and TensorBoard, and
writes preview grids. It never knows which family it runs.
"""
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from deepjax import compile_options
from deepjax.errors import UserError
from deepjax.train import checkpoint as ckpt
from deepjax.train import metrics as mlib
from deepjax.train import parallel
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
    from jax._src import distributed  # pylint: disable=import-outside-toplevel
    self._multi = (jax.process_count() > 1
                   and distributed.global_state.preemption_sync_manager is not None)
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
  """Creates the state already replicated on the mesh (eval_shape, then jit(init))."""
  repl = parallel.replicated(mesh)
  rng = jax.random.key(config.seed)
  shapes = jax.eval_shape(task.init, rng, example_batch)
  state_sharding = jax.tree.map(lambda _: repl, shapes)
  state = compile_options.jit(task.init, out_shardings=state_sharding)(rng, example_batch)
  return state, shapes, state_sharding


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config.task` in `workdir` (resuming if a checkpoint exists).

  `config.batch_size` is the global batch (all devices of all processes); each
  process reads `batch_size / process_count` examples per step from its own
  shard of the data. With several processes (jax.distributed initialized) every
  process calls this with the same config and workdir (a shared filesystem).

  SIGTERM (preemption) finishes the running step, saves and returns; rerunning
  resumes exactly (same parameters as an uninterrupted run when the process
  count is unchanged). A non-finite loss raises UserError without saving
  (`config.nonfinite="stop"`) or skips that step (`"skip"`).

  Returns {"step": final step, "metrics": last logged metrics (floats), "state": state,
  "stopped": True when a stop signal ended the run early}.
  """
  t_start = time.perf_counter()
  workdir = os.path.abspath(workdir)
  guard = config.get("nonfinite", "stop")
  if guard not in ("stop", "skip"):
    raise UserError(f"config.nonfinite must be 'stop' or 'skip', not {guard!r}")
  if int(config.num_steps) <= 0:
    raise UserError(f"config.num_steps is {int(config.num_steps)}; set --config.num_steps=N "
                    "(the number of training steps to reach; a rerun resumes up to it)")
  with _StopFlag() as stop:
    mesh = parallel.make_mesh(config.get("mesh_devices", 0))
    parallel.warm_up(mesh)
    os.makedirs(workdir, exist_ok=True)
    repl = parallel.replicated(mesh)
    bsharding = parallel.batch_sharding(mesh)
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
      abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                              shapes, state_sharding)
      state, data_state = ckpt.restore(manager, latest, abstract)
      _resume_data(it, data_state, start_data_state)
      mlib.log(f"resumed from step {int(state.step)} in {workdir}")
    else:
      it.set_state(start_data_state)

    step_fn = compile_train_step(task, state_sharding, bsharding, repl, guard)
    preview_fn = compile_options.jit(task.preview, in_shardings=(state_sharding, bsharding),
                         out_shardings=repl)
    params_finite = jax.jit(lambda p: _all_finite(p), out_shardings=repl)
    writer = mlib.MetricWriter(workdir)
    total = int(config.num_steps)
    step = int(state.step)
    first = step
    progress = mlib.Progress(total, config.batch_size * task.images_per_example, step)
    last = {}
    preview_batch = None
    skipped = 0

    def save(step_):
      if guard == "stop" and not bool(params_finite(state.params)):
        raise UserError(f"non-finite parameters at step {step_}; stopped without saving: the "
                        f"last good checkpoint in {workdir} is kept "
                        "(config.nonfinite='skip' skips such steps instead)")
      data_states = {str(jax.process_index()): it.get_state()}
      ckpt.save(manager, step_, state, _gather_data_states(data_states), config)

    while step < total:
      batch = parallel.to_global(next(it), mesh)
      if preview_batch is None:
        preview_batch = batch
      state, metrics = step_fn(state, batch)
      step += 1
      stopping = stop.should_stop(step)
      if step == first + 1:
        jax.block_until_ready(metrics)
        mlib.log(f"first step done {time.perf_counter() - t_start:.1f} s after start "
                 "(data, init, compile)")
      do_log = step % config.log_every == 0 or step == total or stopping
      do_save = step % config.checkpoint_every == 0 or step == total or stopping
      if guard == "skip":
        skipped += int(jax.device_get(metrics["skipped"]))
      if do_log or do_save:
        last = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "skipped"}
        if guard == "skip":
          last["skipped_steps"] = float(skipped)
        elif not all(math.isfinite(v) for v in last.values()):
          raise UserError(f"non-finite loss at step {step} ({_fmt(last)}); stopped without "
                          f"saving: the last good checkpoint in {workdir} is kept "
                          "(config.nonfinite='skip' skips such steps instead)")
      if do_log:
        mlib.log(progress.line(step, last))
        writer.scalars(step, last)
      if do_save:
        save(step)
      if stopping:
        mlib.log(f"stop signal received: saved step {step}; rerun the same command to resume")
        break
      if config.preview_every and (step % config.preview_every == 0 or step == total):
        grid = np.asarray(preview_fn(state, preview_batch).addressable_data(0))
        if jax.process_index() == 0:
          mlib.write_png(os.path.join(workdir, "previews", f"step_{step:07d}.png"), grid)
          mlib.write_png(os.path.join(workdir, "preview.png"), grid)
          writer.image(step, "preview", grid)
    writer.close()
    manager.close()
  return {"step": step, "metrics": last, "state": state, "stopped": stop.stop}


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


def _gather_data_states(local: dict) -> dict:
  """Every process's iterator state, so any process count can find its own."""
  if jax.process_count() == 1:
    return local
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
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


def _fmt(d):
  return ", ".join(f"{k}={v:.4g}" for k, v in d.items())
