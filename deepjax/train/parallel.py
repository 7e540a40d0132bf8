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


def maybe_initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                                 process_id: int | None = None) -> None:
  """Calls `jax.distributed.initialize` when several processes are asked for.

  Explicit arguments win; otherwise DEEPJAX_COORDINATOR / DEEPJAX_NUM_PROCESSES /
  DEEPJAX_PROCESS_ID are read; on TPU VMs and under SLURM JAX detects the cluster
  itself when DEEPJAX_DISTRIBUTED=auto.
  """
  coordinator = coordinator or os.environ.get("DEEPJAX_COORDINATOR")
  if num_processes is None and os.environ.get("DEEPJAX_NUM_PROCESSES"):
    num_processes = int(os.environ["DEEPJAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("DEEPJAX_PROCESS_ID"):
    process_id = int(os.environ["DEEPJAX_PROCESS_ID"])
  if coordinator or (num_processes and num_processes > 1):
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  elif os.environ.get("DEEPJAX_DISTRIBUTED") == "auto":
    jax.distributed.initialize()
  else:
    return
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D mesh, axis `data`, over every device of every host (or the first `num_devices`)."""
  n = num_devices or jax.device_count()
  if n > jax.device_count():
    raise UserError(f"asked for {n} devices, only {jax.device_count()} present")
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n])


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def host_batch_size(global_batch: int, mesh=None) -> int:
  """Per-process batch; the global batch must split evenly over the mesh's devices."""
  n = mesh.size if mesh is not None else jax.device_count()
  if global_batch % n:
    raise UserError(f"batch size {global_batch} does not divide over {n} "
                    "devices; choose a multiple of the device count")
  return global_batch // jax.process_count()


def to_global(host_batch, mesh):
  """Host-local numpy batch (dict of arrays) -> global jax.Arrays sharded on `data`."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), host_batch)
