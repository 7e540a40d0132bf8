"""Read PyTorch checkpoints as flat numpy dicts, safely (no pickled code runs).

`read_checkpoint(path) -> {"<part>.<name>": np.ndarray}` for
- `.pth` / `.pth.tar` / `.pt` / `.ckpt` files written by `torch.save` (zip or legacy format),
  loaded with `torch.load(..., weights_only=True)`: only tensors, numbers, strings and
  containers are accepted; a file holding any other pickled object is refused with a
  UserError. Needs torch (`pip install -e ".[torch]"`).
- `.npz` files with the same flat names (no torch needed).
Nested dicts of tensors are flattened with "." (the reference's `{"generator":
state_dict, ...}`); non-tensor entries (epoch numbers) are dropped, and so are optimiser
states (`optimizer*` entries).
"""
import os
import pickle
from typing import Dict

import numpy as np

from deepjax.errors import UserError, first_line

TORCH_SUFFIXES = (".pth", ".pth.tar", ".pt", ".tar", ".ckpt", ".bin")


def _to_numpy(t) -> np.ndarray:
  t = t.detach().cpu()
  if str(t.dtype) in ("torch.float16", "torch.bfloat16", "torch.float64"):
    t = t.float()  # weights as float32
  return t.numpy().copy()


def flatten(tree, prefix: str = "") -> Dict[str, object]:
  """Nested mappings -> {"a.b.c": leaf}; optimiser states and non-tensor leaves dropped."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      if not prefix and str(key).startswith("optimizer"):
        continue
      out.update(flatten(value, name + "."))
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
      out[name] = value
  return out


def _load_torch(path: str):
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise UserError("reading PyTorch checkpoints needs torch: pip install -e \".[torch]\" "
                    "(or convert the file to a flat .npz elsewhere)") from e
  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    first = (str(e).strip().splitlines() or [""])[0]
    raise UserError(f"refused {path}: it holds more than tensors and plain containers "
                    f"(torch.load weights_only=True: {first[:200]})") from e
  except (RuntimeError, EOFError, OSError, ValueError) as e:
    raise UserError(f"{path} is not a readable PyTorch checkpoint: {first_line(e, 200)}") from e


def read_checkpoint(path: str) -> Dict[str, np.ndarray]:
  """{"<part>.<torch name>": np.ndarray} of a `.pth`-style file or a flat `.npz`."""
  if not os.path.isfile(path):
    raise UserError(f"checkpoint file not found: {path}")
  if path.endswith(".npz"):
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except (ValueError, OSError) as e:
      raise UserError(f"{path} is not a readable .npz file: {e}") from e
  if not path.endswith(TORCH_SUFFIXES):
    raise UserError(f"unknown checkpoint type {path} (expected one of "
                    f"{', '.join(TORCH_SUFFIXES + ('.npz',))})")
  tree = _load_torch(path)
  if not isinstance(tree, dict):
    raise UserError(f"{path} holds a {type(tree).__name__}, expected a dict of state dicts")
  flat = flatten(tree)
  if not flat:
    raise UserError(f"{path} holds no tensors")
  return {k: _to_numpy(v) for k, v in flat.items()}
