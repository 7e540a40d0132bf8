"""Thin-plate-spline motion (PyTorch) checkpoints <-> deepjax TPSMM variables.

The reference code (github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model) saves
`{"kp_detector": state_dict, "dense_motion_network": ..., "inpainting_network": ...,
"bg_predictor": ..., "avd_network": ..., "optimizer": ..., "epoch": n}`. Everything here
works on a flat dict `"<part>.<torch name>" -> np.ndarray` (`checkpoint_io.read_checkpoint`
reads `.pth.tar` files with `weights_only=True`).

The name map is `deepjax.convert.fomm.entry_map` (torch name -> Flax key and shape, built
from the model's variable shapes); `tpsmm_variables` uses it from torch to Flax
(`variables_from_torch`) and `torch_state` from Flax to torch, so the two directions cannot
disagree.

  state = checkpoint_io.read_checkpoint("vox.pth.tar")
  model = TPSMM.from_config(config.model)
  variables, absent = tpsmm_variables(state, model, config.data.size)
  fomm.write_run("runs/vox", variables, config)       # a deepjax run folder
"""
from typing import Dict, List, Mapping, Tuple

import jax
import numpy as np

from deepjax.convert import fomm as convert_fomm
from deepjax.errors import UserError

# Parts inference always needs; the others (bg_predictor, avd_network) are converted when
# the checkpoint has them and start from random weights otherwise (as the reference's demo
# does for a checkpoint without avd_network).
REQUIRED = ("kp_detector", "dense_motion_network", "inpainting_network")


def tpsmm_variables(state: Mapping[str, np.ndarray], model, image_size: int,
                    what: str = "checkpoint", seed: int = 0
                    ) -> Tuple[Dict[str, Dict], List[str]]:
  """Flat reference state -> (TPSMM variables of `model`, parts initialised at random).

  Args:
    state: "<part>.<name>" -> np.ndarray in torch layout (other top-level parts ignored).
    model: a `deepjax.models.motion.tpsmm.TPSMM`.
    image_size: frame size H = W of the config (the templates are built for it).
    seed: RNG seed of the random weights of optional parts the checkpoint lacks.
  Raises:
    UserError listing every missing, unexpected and mis-shaped entry.
  """
  parts = convert_fomm.split_parts(state)
  shape = (1, image_size, image_size, 3)
  templates = model.init_shapes(shape)
  absent = [p for p in model.parts if p not in parts and p not in REQUIRED]
  problems = []
  for part in model.parts:
    if part in parts:
      problems += convert_fomm.check_entries(parts[part], templates[part], part)
    elif part in REQUIRED:
      problems.append(f"no '{part}' entries")
  if problems:
    shown = "; ".join(problems[:40])
    more = f"; and {len(problems) - 40} more" if len(problems) > 40 else ""
    raise UserError(f"{what} does not fit the config's model ({len(problems)} problems): "
                    f"{shown}{more}")
  out = dict(model.init(jax.random.key(seed), shape, absent)) if absent else {}
  for part in model.parts:
    if part not in absent:
      out[part] = convert_fomm.variables_from_torch(parts[part], templates[part],
                                                    f"{what}: {part}")
  return out, absent


def torch_state(variables: Mapping[str, Mapping]) -> Dict[str, np.ndarray]:
  """TPSMM variables -> the flat reference state ("<part>.<torch name>" -> np.ndarray),
  loadable by the reference modules' `load_state_dict(strict=False)` (counters and the
  fixed anti-alias kernels are not included)."""
  out = {}
  for part, v in variables.items():
    for name, (key, _) in convert_fomm.entry_map(v).items():
      node = v
      for k in key:
        node = node[k]
      out[f"{part}.{name}"] = convert_fomm.to_torch_layout(key, np.asarray(node, np.float32))
  return out
