"""Published first-order-motion (PyTorch) checkpoints -> deepjax FOMM variables.

The reference code (github.com/AliaksandrSiarohin/first-order-model) saves
`{"kp_detector": state_dict, "generator": state_dict, "discriminator": ...,
"optimizer_*": ..., "epoch": n}` with `torch.save`. Everything here works on numpy arrays
(a flat dict `"kp_detector.<torch name>" -> np.ndarray`); torch is needed only to read
`.pth` files (`read_checkpoint`, with `weights_only=True`: no pickled code runs).

  state = read_checkpoint("vox-cpk.pth.tar")          # or a flat .npz
  fomm = FOMM.from_config(config.model)
  variables = fomm_variables(state, fomm, config.data.size)
  write_run("runs/vox", variables, config)           # a deepjax run folder

The torch <-> Flax name map is one table, `entry_map` (torch name -> Flax key and shape,
built from a module's variables); `variables_from_torch` maps one module's state dict
with it, `fomm_variables` a whole checkpoint (every missing, unexpected and mis-shaped
entry listed in one UserError), `train_state_from_variables` gives the run-folder layout.
"""
import os
import re
from typing import Dict, List, Mapping, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from deepjax.errors import UserError

# The parts of a reference checkpoint that inference needs, in FOMM's variables.
PARTS = ("kp_detector", "generator")
# Entries the converter never maps: counters, and the fixed Gaussian kernels of the
# reference's AntiAliasInterpolation2d (deepjax recomputes them).
_IGNORED = re.compile(r"(^|\.)num_batches_tracked$|(^|\.)down\.weight$")


def _torch_name(path: Tuple[str, ...], leaf: str) -> str:
  """('encoder', 'down_blocks_0', 'conv'), 'weight' -> 'encoder.down_blocks.0.conv.weight'."""
  # Flax names list members `name_<i>` (and discriminator scales `discs_0-5`).
  parts = [re.sub(r"_(\d[\d-]*)$", r".\1", p) for p in path]
  return ".".join(parts + [leaf])


def entry_map(template: Mapping) -> Dict[str, Tuple[Tuple[str, ...], Tuple[int, ...]]]:
  """The name map of one module: torch state-dict name -> (Flax key, torch shape).

  The one table between the two frameworks: both directions (which torch entries a
  template expects, `variables_from_torch`) are read from it. `template`: {"params": ...,
  "batch_stats": ...} of arrays or ShapeDtypeStructs; a Flax key is (collection, *module
  path, leaf). Conv kernels (kh, kw, I, O) are `weight` (O, I, kh, kw) (`weight_orig` under
  spectral norm), Dense kernels (I, O) are `weight` (O, I); norm scales `weight`; BatchNorm
  statistics `running_mean` / `running_var`; spectral-norm vectors `weight_u` / `weight_v`.
  Values: `from_torch_layout` / `to_torch_layout`.
  """
  flat = {}
  for col in ("params", "batch_stats"):
    for path, leaf in jax.tree_util.tree_flatten_with_path(template.get(col, {}))[0]:
      flat[(col,) + tuple(k.key for k in path)] = tuple(leaf.shape)
  out = {}
  for key, shape in flat.items():
    col, path, leaf = key[0], key[1:-1], key[-1]
    spectral = ("batch_stats",) + path + ("u",) in flat
    if col == "params" and leaf == "kernel":
      name = "weight_orig" if spectral else "weight"
      shape = (shape[3], shape[2]) + shape[:2] if len(shape) == 4 else shape[::-1]
    elif col == "params":
      name = {"scale": "weight", "bias": "bias"}[leaf]
    else:
      name = {"mean": "running_mean", "var": "running_var", "u": "weight_u",
              "v": "weight_v"}[leaf]
    out[_torch_name(path, name)] = (key, shape)
  return out


def from_torch_layout(key: Tuple[str, ...], value: np.ndarray) -> np.ndarray:
  """A torch value for the Flax `key` in Flax's layout (kernels transposed)."""
  value = np.asarray(value)
  if key[-1] == "kernel":
    return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
  return value


def to_torch_layout(key: Tuple[str, ...], value: np.ndarray) -> np.ndarray:
  """A Flax value at `key` in torch's layout (the inverse of `from_torch_layout`)."""
  value = np.asarray(value)
  if key[-1] == "kernel":
    return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
  return value


def expected_entries(template: Mapping) -> Dict[str, Tuple[int, ...]]:
  """Torch state-dict names and shapes that fill one module's Flax variables `template`."""
  return {name: shape for name, (_, shape) in entry_map(template).items()}


def check_entries(state: Mapping[str, np.ndarray], template: Mapping, part: str) -> List[str]:
  """Problems of one part's state dict against its template, one string each."""
  expected = expected_entries(template)
  problems = []
  for name in sorted(set(expected) - set(state)):
    problems.append(f"missing {part}.{name} {expected[name]}")
  for name in sorted(state):
    if _IGNORED.search(name):
      continue
    if name not in expected:
      problems.append(f"unexpected {part}.{name} {tuple(np.shape(state[name]))}")
    elif tuple(np.shape(state[name])) != expected[name]:
      problems.append(f"shape of {part}.{name} is {tuple(np.shape(state[name]))}, "
                      f"expected {expected[name]}")
  return problems


def variables_from_torch(state_dict: Mapping[str, np.ndarray], template: Mapping,
                         what: str = "checkpoint") -> Dict[str, Dict]:
  """One module's reference PyTorch state dict -> its Flax variables, by `entry_map`.

  `template` is one module's variables (e.g. `fomm.init_shapes(...)["generator"]`);
  `num_batches_tracked` and the fixed Gaussian kernels of AntiAliasInterpolation2d
  (`*.down.weight`, recomputed here) are ignored. Returns {"params", "batch_stats"} of
  float32 jax arrays. Raises UserError naming the first missing, unexpected or mis-shaped
  entry (and how many more there are).
  """
  problems = check_entries(state_dict, template, what)
  if problems:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise UserError(f"{problems[0]}{more}")
  result: Dict[str, Dict] = {}
  for name, (key, _) in entry_map(template).items():
    node = result
    for k in key[:-1]:
      node = node.setdefault(k, {})
    node[key[-1]] = jnp.asarray(from_torch_layout(key, state_dict[name]), jnp.float32)
  return result


def split_parts(state: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
  """{"kp_detector.x.weight": a, ...} -> {"kp_detector": {"x.weight": a}, ...}."""
  out: Dict[str, Dict[str, np.ndarray]] = {}
  for name, value in state.items():
    part, _, rest = name.partition(".")
    out.setdefault(part, {})[rest] = value
  return out


def fomm_variables(state: Mapping[str, np.ndarray], fomm, image_size: int,
                   what: str = "checkpoint") -> Dict[str, Dict]:
  """Flat reference state (see module doc) -> FOMM variables of the model `fomm`.

  Args:
    state: "kp_detector.<name>" / "generator.<name>" -> np.ndarray in torch layout (other
      top-level parts, e.g. the discriminator, are ignored).
    fomm: a `deepjax.models.motion.fomm.FOMM`.
    image_size: frame size H = W of the config (the templates are built for it).
  Returns:
    {"kp_detector": {"params", "batch_stats"}, "generator": {"params", "batch_stats"}},
    float32 jax arrays.
  Raises:
    UserError listing every missing, unexpected and mis-shaped entry.
  """
  parts = split_parts(state)
  templates = fomm.init_shapes((1, image_size, image_size, 3))
  problems = []
  for part in PARTS:
    if part not in parts:
      problems.append(f"no '{part}' entries")
    else:
      problems += check_entries(parts[part], templates[part], part)
  if problems:
    shown = "; ".join(problems[:40])
    more = f"; and {len(problems) - 40} more" if len(problems) > 40 else ""
    raise UserError(f"{what} does not fit the config's model ({len(problems)} problems): "
                    f"{shown}{more}")
  return {part: variables_from_torch(parts[part], templates[part], part) for part in PARTS}


def train_state_from_variables(variables: Mapping[str, Mapping], seed: int = 0):
  """FOMM variables -> the TrainState a motion run checkpoints.

  Layout: params = {part: variables[part]["params"]}, model_state = {part: the other
  collections of variables[part] (BatchNorm "batch_stats")}, opt_state = {} (a converted
  checkpoint carries no optimiser state), step 0.
  """
  from deepjax.train.state import TrainState  # pylint: disable=import-outside-toplevel
  params = {p: v["params"] for p, v in variables.items()}
  model_state = {p: {c: x for c, x in v.items() if c != "params"} for p, v in variables.items()}
  return TrainState.create(params, {}, jax.random.key(seed), model_state)


def variables_from_state(params: Mapping, model_state: Mapping) -> Dict[str, Dict]:
  """The inverse of `train_state_from_variables`: (params, model_state) -> FOMM variables."""
  return {p: dict(model_state.get(p, {}), params=params[p]) for p in params}


def write_run(output_dir: str, variables: Mapping[str, Mapping], config, step: int = 0) -> str:
  """Saves `variables` as a deepjax run folder `output_dir/checkpoints/<step>/`.

  The folder holds `state` (TrainState), `data` ({} : no data iterator) and `config`;
  `deepjax.load(output_dir)` and `deepjax animate` read it. Refuses a folder that
  already has checkpoints. Returns the step folder.
  """
  from deepjax.train import checkpoint as ckpt  # pylint: disable=import-outside-toplevel
  if os.path.isdir(ckpt.checkpoint_dir(output_dir)) and os.listdir(
      ckpt.checkpoint_dir(output_dir)):
    raise UserError(f"{output_dir} already holds checkpoints; choose an empty output folder")
  state = train_state_from_variables(variables, int(config.get("seed", 0)))
  state = jax.tree.map(jnp.asarray, state)
  manager = ckpt.make_manager(output_dir)
  try:
    ckpt.save(manager, step, state, {}, config)
  finally:
    manager.close()
  return os.path.join(ckpt.checkpoint_dir(output_dir), str(step))
