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
