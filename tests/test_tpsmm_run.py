"""A thin-plate-spline motion run folder: `deepjax convert --from=tpsmm` -> `deepjax.load`
-> animation (deepjax.infer.animate) and reconstruction (deepjax.eval.reconstruction), with
the tiny config and the parity fixture's reference-layout weights."""
import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.convert import tpsmm as convert_tpsmm
from deepjax.models.motion.tpsmm import TPSMM

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONFIG = os.path.join(REPO, "configs", "tpsmm_vox256.py") + ":tiny"


def _convert(args, timeout=600):
  return subprocess.run([sys.executable, "-m", "deepjax", "convert"] + args, capture_output=True,
                        text=True, timeout=timeout, cwd=REPO,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.slow
def test_cli_convert_load_animate(tmp_path):
  spec = importlib.util.spec_from_file_location(
      "make_tpsmm_parity_fixture", os.path.join(HERE, "fixtures", "make_tpsmm_parity_fixture.py"))
  recipe = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipe)
  with np.load(os.path.join(HERE, "fixtures", "tpsmm_parity.npz")) as ref:
    names_shapes = json.loads(str(ref["tiny/names_shapes"]))
    seed = int(ref["tiny/seed"])
  state = recipe.random_state_dict(names_shapes, seed)
  npz = str(tmp_path / "tiny.npz")
  np.savez(npz, **{k: v for k, v in state.items() if not k.startswith("avd_network.")})
  out = str(tmp_path / "run")
  r = _convert(["--from=fomm", f"--input={npz}", f"--config={CONFIG}", f"--output={out}"])
  assert r.returncode == 2 and "model.name is 'tpsmm'" in r.stderr
  r = _convert(["--from=tpsmm", f"--input={npz}", f"--config={CONFIG}", f"--output={out}"])
  assert r.returncode == 0, r.stderr
  assert "random weights: avd_network" in r.stdout
  import deepjax  # pylint: disable=import-outside-toplevel
  model, variables, config = deepjax.load(out)
  assert isinstance(model, TPSMM) and config.converted_from.random_parts == ["avd_network"]
  expected, _ = convert_tpsmm.tpsmm_variables(state, model, 64)
  for part in ("kp_detector", "bg_predictor", "dense_motion_network", "inpainting_network"):
    for x, y in zip(jax.tree.leaves(variables[part]), jax.tree.leaves(expected[part])):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  from deepjax.infer import animate  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
  driving = (rng.random((3, 64, 64, 3)) * 255).astype(np.uint8)
  model, variables, _ = animate.load_motion_model(out)
  frames = animate.animate_frames(model, variables, source, driving, adapt_scale=True,
                                  batch_size=2)
  assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8 and frames.std() > 1
  avd = animate.animate_frames(model, variables, source, driving, batch_size=2, avd=True)
  assert avd.shape == frames.shape and not np.array_equal(avd, frames)
  # `deepjax animate --mode=avd` needs trained AVD weights: refused for this conversion
  # (avd_network random), for a trained run (no converted_from) and for a FOMM config.
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  with pytest.raises(UserError, match="random weights"):
    animate.check_avd(config)
  trained = load_config("tpsmm_vox256", "tiny")
  with pytest.raises(UserError, match="random weights"):
    animate.check_avd(trained)
  with pytest.raises(UserError, match="no AVD network"):
    animate.check_avd(load_config("fomm_vox256", "tiny"))
  full = config.copy_and_resolve_references()
  full.converted_from.random_parts = []
  animate.check_avd(full)
  from deepjax.eval import reconstruction  # pylint: disable=import-outside-toplevel
  rec = reconstruction.reconstruct_video(model, variables, driving, batch_size=2)
  assert rec.shape == driving.shape and rec.dtype == np.uint8 and rec.std() > 1
  assert load_config("tpsmm_vox256", "tiny").model.name == "tpsmm"
