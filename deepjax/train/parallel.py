"""Devices, mesh, shardings and host-local -> global batches.

The global batch is sharded over the mesh axis `data`; parameters and
optimizer state are replicated. The same code runs on 1 CPU device, 8 forced
CPU devices, many GPUs, or a multi-host TPU pod.
"""
import os

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from deepjax.errors import UserError

DATA_AXIS = "data"


def _auto_cluster() -> str | None:
  """The cluster JAX can detect by itself, if this process runs in one with several tasks."""
  env = os.environ
  if env.get("SLURM_JOB_ID") and env.get("SLURM_STEP_ID") and int(env.get("SLURM_NTASKS", "1")) > 1:
    return "SLURM"
  if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]) > 1:
    return "TPU pod"
  return None


def maybe_initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                                 process_id: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` when several processes are asked for or detected.

  In order: explicit arguments (the `--coordinator/--num_processes/--process_id`
  flags); else DEEPJAX_COORDINATOR / DEEPJAX_NUM_PROCESSES / DEEPJAX_PROCESS_ID;
  else, with DEEPJAX_DISTRIBUTED=auto, or under `srun` with several SLURM tasks, or
  on a TPU VM that is one worker of a pod, `jax.distributed.initialize()` without
  arguments (JAX reads the cluster from the environment). DEEPJAX_DISTRIBUTED=0
  turns the detection off. On CPU the cross-process collectives use gloo.

  DEEPJAX_LOCAL_DEVICE_IDS=0,1,... names the accelerators this process drives.
  Under SLURM JAX assumes one process per GPU (device = SLURM_LOCALID); with one
  process per node set it to all the node's GPUs (e.g. 0,1,2,3,4,5,6,7).

  Returns:
    True when jax.distributed was initialized here.
  """
  coordinator = coordinator or os.environ.get("DEEPJAX_COORDINATOR")
  if num_processes is None and os.environ.get("DEEPJAX_NUM_PROCESSES"):
    num_processes = int(os.environ["DEEPJAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("DEEPJAX_PROCESS_ID"):
    process_id = int(os.environ["DEEPJAX_PROCESS_ID"])
  mode = os.environ.get("DEEPJAX_DISTRIBUTED", "")
  explicit = bool(coordinator) or bool(num_processes and num_processes > 1)
  if explicit and (not coordinator or num_processes is None or process_id is None):
    raise UserError("multi-process training needs all of the coordinator (host:port), the "
                    "number of processes and this process's id (or DEEPJAX_DISTRIBUTED=auto)")
  if explicit and not 0 <= process_id < num_processes:
    raise UserError(f"process id {process_id} is not in [0, {num_processes})")
  cluster = None if explicit or mode == "0" else ("auto" if mode == "auto" else _auto_cluster())
  if not explicit and cluster is None:
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {}
  if os.environ.get("DEEPJAX_LOCAL_DEVICE_IDS"):
    try:
      kwargs["local_device_ids"] = [int(i) for i in
                                    os.environ["DEEPJAX_LOCAL_DEVICE_IDS"].split(",")]
    except ValueError as e:
      raise UserError("DEEPJAX_LOCAL_DEVICE_IDS must be comma-separated device numbers, "
                      f"got {os.environ['DEEPJAX_LOCAL_DEVICE_IDS']!r}") from e
  if explicit:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, **kwargs)
  else:
    jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed (%s): process %d of %d, %d local / %d global devices",
               cluster or coordinator, jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return True


def sync_processes(name: str) -> None:
  """Barrier over all processes (no-op with one); also opens the cross-process channel.

  CPU (gloo) collectives give up when a peer takes more than 30 s to join the
  *first* collective of a device group; after that they wait. Calling this early,
  when all processes are in step, makes later long waits (data preparation on
  process 0) safe.
  """
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)


def warm_up(mesh) -> None:
  """One tiny all-reduce over `mesh` and one barrier, while all processes are in step.

  See `sync_processes`: this opens the channels the train step and the
  checkpoint/data barriers use, so a slow process later does not time them out.
  """
  if jax.process_count() == 1:
    return
  sync_processes("deepjax.warm_up")
  sharding = batch_sharding(mesh)
  ones = jax.make_array_from_process_local_data(
      sharding, np.ones((len(mesh.local_devices),), np.float32))
  total = jax.jit(jax.numpy.sum, out_shardings=replicated(mesh))(ones)
  if int(total) != mesh.size:
    raise RuntimeError(f"collective check failed: {float(total)} != {mesh.size}")


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D mesh, axis `data`, over every device of every host (or the first `num_devices`).

  With several processes the mesh must hold every device (each process feeds its
  own devices), so `num_devices` must be 0 or `jax.device_count()`.
  """
  n = num_devices or jax.device_count()
  if n > jax.device_count():
    raise UserError(f"asked for {n} devices, only {jax.device_count()} present")
  if jax.process_count() > 1 and n != jax.device_count():
    raise UserError(f"mesh_devices={n}: with {jax.process_count()} processes the mesh uses "
                    f"all {jax.device_count()} devices (set mesh_devices=0)")
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n])


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def host_batch_size(global_batch: int, mesh=None) -> int:
  """Per-process batch: `global_batch` (config.batch_size) split over the processes.

  The global batch is what one optimizer step averages over; it must split
  evenly over the mesh's devices (per-device batch = global / device count).
  """
  n = mesh.size if mesh is not None else jax.device_count()
  if global_batch <= 0 or global_batch % n:
    raise UserError(f"batch size {global_batch} must be a positive multiple of the device "
                    f"count ({n})")
  return global_batch // jax.process_count()


def to_global(host_batch, mesh):
  """Host-local numpy batch (dict of arrays) -> global jax.Arrays sharded on `data`."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), host_batch)
