"""Load a trained deepjax checkpoint without the training loop.

    model, params, config = deepjax.load("runs/faceswap")   # a workdir
    rgb, mask, _ = model.apply({"params": params}, faces, "b")

Works from any JAX project: it needs orbax, flax and deepjax's model modules,
never the training code (tasks, loop, data).
"""
import json
import os
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from deepjax.errors import UserError, first_line


def _checkpoint_step_dir(path: str) -> str:
  """Accepts a workdir, its checkpoints/ folder, or one step folder."""
  path = os.path.abspath(path)
  if not os.path.exists(path):
    raise UserError(f"no checkpoint at {path}")
  candidates = [path, os.path.join(path, "checkpoints")]
  for c in candidates:
    if os.path.isdir(os.path.join(c, "state")):
      return c
    if os.path.isdir(c):
      steps = sorted((int(d) for d in os.listdir(c) if d.isdigit()
                      and os.path.isdir(os.path.join(c, d, "state"))), reverse=True)
      if steps:
        return os.path.join(c, str(steps[0]))
  raise UserError(f"no deepjax checkpoint found in {path} (train one with deepjax train)")


def checkpoint_step_dir(path: str) -> str:
  """The checkpoint step folder that `load_params(path)` reads (workdir, checkpoints/ or step)."""
  return _checkpoint_step_dir(path)


def ensemble_members(workdir) -> list[str]:
  """The run folders of `workdir`: one folder, or an ensemble given as a sequence or as one
  comma-separated string ("runs/a/best,runs/b/best")."""
  names = workdir.split(",") if isinstance(workdir, str) else list(workdir)
  names = [n.strip() for n in names if n and n.strip()]
  if not names:
    raise UserError("no run folder given")
  return names


def read_config(path: str) -> ml_collections.ConfigDict:
  """The config saved with the newest checkpoint under `path`."""
  step_dir = _checkpoint_step_dir(path)
  cfg_dir = os.path.join(step_dir, "config")
  files = [f for f in os.listdir(cfg_dir) if not f.startswith("_")] if os.path.isdir(cfg_dir) else []
  if not files:
    raise UserError(f"checkpoint {step_dir} has no config")
  try:
    with open(os.path.join(cfg_dir, files[0])) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:
    raise UserError(f"checkpoint config is unreadable ({type(e).__name__}): {step_dir}") from e


def build_model(config):
  """The Flax module of a config (swap families, first-order or thin-plate-spline motion, the
  detector)."""
  if config.task in ("ae", "vae", "gan"):
    from deepjax.models import swap  # pylint: disable=import-outside-toplevel
    return swap.from_config(config.model)
  if config.task == "motion" and config.model.get("name", "fomm") == "tpsmm":
    from deepjax.models.motion.tpsmm import TPSMM  # pylint: disable=import-outside-toplevel
    return TPSMM.from_config(config.model)
  if config.task == "motion":
    from deepjax.models.motion.fomm import FOMM  # pylint: disable=import-outside-toplevel
    return FOMM.from_config(config.model)
  if config.task == "detect":
    from deepjax.models import detect  # pylint: disable=import-outside-toplevel
    return detect.from_config(config.model)
  raise UserError(f"unknown task {config.task!r} in checkpoint")


def _closed_loop_filter(previous):
  def hook(unraisable):
    if unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)
  hook.drops_closed_loop = True
  return hook


def drop_closed_loop_reports() -> None:
  """After a failed orbax restore, the reads still in flight call back into orbax's event
  loop, which is closed by then; Python reports each as an unraisable RuntimeError (a
  traceback on stderr beside the one-line error). Those reports, and only those, are dropped.
  Installed before the read: a callback can fire before the failure reaches this module."""
  if not getattr(sys.unraisablehook, "drops_closed_loop", False):
    sys.unraisablehook = _closed_loop_filter(sys.unraisablehook)


def load_state(path: str) -> dict:
  """The saved TrainState fields (step, params, opt_state, model_state, rng) as a dict."""
  step_dir = _checkpoint_step_dir(path)
  path = os.path.join(step_dir, "state")
  drop_closed_loop_reports()
  with ocp.StandardCheckpointer() as ckptr:
    # Restore into host numpy arrays: works whatever devices (or how many processes)
    # wrote the checkpoint.
    try:
      meta = ckptr.metadata(path)
      if hasattr(meta, "item_metadata"):
        meta = meta.item_metadata
        meta = meta.tree if meta is not None else None
      if meta is None:
        raise ValueError("no readable metadata")
      target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), meta)
      return ckptr.restore(path, target)
    except Exception as e:  # pylint: disable=broad-except  (any failure to read the files)
      raise UserError(f"checkpoint is corrupt or incomplete ({first_line(e, 100)}): "
                      f"{step_dir}") from e


def load_params(path: str):
  """The parameter pytree (numpy arrays) of the newest checkpoint under `path`."""
  return load_state(path)["params"]


def motion_variables(state: dict, parts=("kp_detector", "generator")) -> dict:
  """{part: {"params"[, "batch_stats"]}} of a motion TrainState (`parts`: the model's, e.g.
  FOMM's "kp_detector", "generator").

  Layout of motion runs (deepjax.train.tasks.motion, deepjax.convert): params = {net:
  params}, model_state = {net: {"batch_stats": ...}}; the discriminator is left out.
  """
  params, model_state = state["params"], state.get("model_state") or {}
  return {k: dict(model_state.get(k) or {}, params=params[k]) for k in parts}


def load(path: str):
  """-> (model, params, config) of the newest checkpoint under `path`.

  For swap families `params` is the model's parameter dict; for GAN runs it is
  the generator's (`{"gen": ..., "disc": ...}` -> gen); for detectors trained with
  `detect.ema_decay` the moving average of the parameters. For motion models `model`
  is a `deepjax.models.motion.fomm.FOMM` and `params` its variables
  `{"kp_detector": {"params", "batch_stats"}, "generator": {...}}`:

    fomm, variables, config = deepjax.load("runs/vox")   # e.g. from deepjax.convert
    kp = fomm.detect(variables, frames_Tx256x256x3)

  A thin-plate-spline run (config.model.name "tpsmm") gives a
  `deepjax.models.motion.tpsmm.TPSMM` and its variables (`TPSMM.parts`), with the same
  `detect` / `animate` methods.
  """
  config = read_config(path)
  model = build_model(config)
  if config.task == "motion":
    return model, motion_variables(load_state(path), model.parts), config
  if config.task == "detect":  # the parameters' moving average when the run kept one
    state = load_state(path)
    return model, (state.get("model_state") or {}).get("ema_params", state["params"]), config
  params = load_params(path)
  if isinstance(params, dict) and "gen" in params and config.task == "gan":
    params = params["gen"]
  return model, params, config
