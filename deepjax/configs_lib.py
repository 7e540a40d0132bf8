"""Load the repo's config files (`configs/<name>.py`) by name from library code.

Programs take `--config=configs/x.py:arg` (absl + ml_collections); library code
and notebooks that want a named config call `load_config("faceswap_ae", "tiny")`.
The configs live beside the package in a clone (`pip install -e .`).
"""
import importlib.util
import os

from deepjax.errors import UserError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def parse_arg(arg: str | None) -> dict:
  """A config file's argument: 'tiny,steps=10' -> {'tiny': True, 'steps': '10'}."""
  out = {}
  for part in (arg or "").split(","):
    part = part.strip()
    if part:
      key, eq, value = part.partition("=")
      out[key.strip()] = value.strip() if eq else True
  return out


def load_config(name: str, arg: str | None = None):
  """`configs/<name>.py`'s `get_config(arg)`."""
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  if not os.path.exists(path):
    raise UserError(f"config {name!r} not found at {path} (deepjax's configs/ folder ships "
                    "with the git clone; install with `pip install -e .` from the clone)")
  spec = importlib.util.spec_from_file_location(f"deepjax_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def set_loop(c, batch_size: int, num_steps: int, every: int = 1000, log_every: int = 100,
             eval_batches: int = 2, eval_every: int | None = None) -> None:
  """Sets the training loop's keys (deepjax/train/loop.py), the same for every family:

  batch_size: the global batch (all devices of all processes together); num_steps: steps to
  reach (a rerun of the same command resumes up to it); log_every: console + TensorBoard
  scalars of the train step; eval_every (default `every`; 0 = off): task.eval_step on
  `eval_batches` held-out batches of the split `eval_split` ("test"; a detector can
  evaluate on "validation", training people held out); keep_best: a held-out figure (e.g.
  "auc"; "" = off) whose best checkpoint is kept in <workdir>/best, best_mode "max" or
  "min"; checkpoint_every (`every`): orbax
  checkpoint of state + data iterator + config; preview_every (`every`; 0 = off): preview.png
  of held-out examples; keep_checkpoints: newest checkpoints kept; mesh_devices: devices in
  the 'data' mesh (0 = all); nonfinite: "stop" (stop without saving) or "skip" (skip the
  step, count it); init_from: a run folder of the same model whose newest weights start
  this run (fine-tuning a pretrained run; "" = random initialisation; ignored on resume).
  """
  c.batch_size = int(batch_size)
  c.num_steps = int(num_steps)
  c.log_every = log_every
  c.eval_every = every if eval_every is None else eval_every
  c.eval_batches = eval_batches
  c.eval_split = "test"
  c.keep_best = ""
  c.best_mode = "max"
  c.checkpoint_every = every
  c.preview_every = every
  c.keep_checkpoints = 3
  c.mesh_devices = 0
  c.nonfinite = "stop"
  c.init_from = ""


def apply_run_args(c, args: dict) -> None:
  """The `batch=N` and `steps=N` config arguments every config takes."""
  if "batch" in args:
    c.batch_size = int(args["batch"])
  if "steps" in args:
    c.num_steps = int(args["steps"])


def set_motion_resolution(c, res: int) -> None:
  """A motion config on `res` px frames: data size and frame shape, and the perceptual
  pyramid's scales cut to the levels of at least 16 px (VGG19's relu5_1 needs 16 px)."""
  c.data.size, c.data.frame_shape = res, (res, res, 3)
  c.train.scales = tuple(s for s in c.train.scales if res * s >= 16)


def read_fields(cfg, defaults: dict, what: str, non_negative=(), numbers=()) -> dict:
  """The fields of `cfg` (a dict, ConfigDict or None) with `defaults` filled in, for the
  op configs (augmentation, self-blend, detector augmentation).

  UserError (naming `what`) for a non-mapping, a field not in `defaults`, a field of
  `numbers` that is not a number or one of `non_negative` that is not a number >= 0; those
  come back as floats, the rest as given.
  """
  cfg = {} if cfg is None else cfg
  if not hasattr(cfg, "get"):
    raise UserError(f"{what} config must be a dict or ConfigDict, got {type(cfg).__name__}")
  unknown = sorted(set(cfg.keys()) - set(defaults))
  if unknown:
    raise UserError(f"unknown {what} config fields {unknown}; known: {sorted(defaults)}")
  out = {name: cfg.get(name, default) for name, default in defaults.items()}
  for name in tuple(numbers) + tuple(non_negative):
    try:
      out[name] = float(out[name])
    except (TypeError, ValueError):
      raise UserError(f"{what} field {name} must be a number, got {out[name]!r}") from None
    if name in non_negative and not out[name] >= 0:
      raise UserError(f"{what} field {name} must be >= 0, got {out[name]!r}")
  return out
