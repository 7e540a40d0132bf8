"""deepjax train --config=configs/faceswap_ae.py[:ARGS] --workdir=DIR [--config.x=y]

Trains (or resumes) the task of the config in DIR: checkpoints, TensorBoard
events, preview PNGs. SIGTERM saves and exits 0 (rerun to resume). Several
processes: --coordinator/--num_processes/--process_id, or DEEPJAX_DISTRIBUTED=auto
under SLURM / on TPU pods; see docs/scaling.md and launch/.
"""
from absl import flags
from ml_collections import config_flags

from deepjax.cli import program

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (.py), with :args.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, previews.")
_COORD = flags.DEFINE_string("coordinator", None, "host:port of process 0 (multi-host).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = program.config_value(_CONFIG)
  if config is None:
    raise UserError("--config is required, e.g. --config=configs/faceswap_ae.py:tiny")
  if not _WORKDIR.value:
    raise UserError("--workdir is required")
  from deepjax.train import parallel  # pylint: disable=import-outside-toplevel
  try:
    parallel.maybe_initialize_distributed(_COORD.value, _NPROC.value, _PID.value)
  except UserError as e:
    raise UserError(f"{e} (flags --coordinator, --num_processes, --process_id)") from e
  from deepjax.train import loop  # pylint: disable=import-outside-toplevel
  from deepjax.train import metrics  # pylint: disable=import-outside-toplevel
  out = loop.train_and_evaluate(config, _WORKDIR.value)
  if not out.get("stopped"):
    metrics.log(f"done: step {out['step']}; run folder {_WORKDIR.value}")


def run(argv=None):
  program.run(main, argv)
