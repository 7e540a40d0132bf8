"""deepjax convert: reference checkpoints -> deepjax run folders; errors listed.

Weights: the seeded recipe of tests/fixtures/make_fomm_parity_fixture.py at the
configs/fomm_vox256.py:tiny size (names and shapes from tests/fixtures/fomm_parity.npz). Files in
torch format are written only when torch is installed (the `torch` extra).
"""
import importlib.util
import json
import os
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.convert import checkpoint_io
from deepjax.convert import fomm as convert_fomm
from deepjax.errors import UserError
from deepjax.models.motion.fomm import FOMM

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TINY_CONFIG = os.path.join(REPO, "configs", "fomm_vox256.py") + ":tiny"


def _recipe():
  spec = importlib.util.spec_from_file_location(
      "make_fomm_parity_fixture", os.path.join(HERE, "fixtures", "make_fomm_parity_fixture.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def tiny_state():
  with np.load(os.path.join(HERE, "fixtures", "fomm_parity.npz")) as ref:
    names_shapes = json.loads(str(ref["tiny/names_shapes"]))
  return _recipe().random_state_dict(names_shapes, 1)


@pytest.fixture(scope="module")
def tiny_fomm():
  return FOMM.from_config(load_config("fomm_vox256", "tiny").model)


def _convert(args, timeout=300):
  return subprocess.run([sys.executable, "-m", "deepjax", "convert"] + args, capture_output=True,
                        text=True, timeout=timeout, cwd=REPO,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def _leaves_equal(a, b):
  ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
  assert ta == tb
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_mapping_values_and_layout(tiny_state, tiny_fomm):
  v = convert_fomm.fomm_variables(tiny_state, tiny_fomm, 64)
  w = tiny_state["generator.first.conv.weight"]  # (O, I, kh, kw)
  k = np.asarray(v["generator"]["params"]["first"]["conv"]["kernel"])  # (kh, kw, I, O)
  assert k[2, 5, 1, 3] == w[3, 1, 2, 5]
  bn = v["generator"]["batch_stats"]["down_blocks_1"]["norm"]
  np.testing.assert_array_equal(np.asarray(bn["var"]),
                                tiny_state["generator.down_blocks.1.norm.running_var"])
  np.testing.assert_array_equal(
      np.asarray(v["kp_detector"]["params"]["predictor"]["decoder"]["up_blocks_0"]["norm"]
                 ["scale"]), tiny_state["kp_detector.predictor.decoder.up_blocks.0.norm.weight"])
  # Round trip through the run-folder layout.
  state = convert_fomm.train_state_from_variables(v)
  assert set(state.params) == {"kp_detector", "generator"} and state.opt_state == {}
  _leaves_equal(convert_fomm.variables_from_state(state.params, state.model_state), v)


def test_every_problem_listed(tiny_state, tiny_fomm):
  bad = dict(tiny_state)
  del bad["generator.final.bias"]
  del bad["kp_detector.kp.weight"]
  bad["generator.extra.weight"] = np.zeros((2, 2, 3, 3), np.float32)
  bad["generator.first.conv.weight"] = np.zeros((16, 3, 5, 5), np.float32)
  with pytest.raises(UserError) as e:
    convert_fomm.fomm_variables(bad, tiny_fomm, 64)
  msg = str(e.value)
  assert "4 problems" in msg and "\n" not in msg
  for part in ("missing generator.final.bias", "missing kp_detector.kp.weight",
               "unexpected generator.extra.weight",
               "shape of generator.first.conv.weight is (16, 3, 5, 5), expected (16, 3, 7, 7)"):
    assert part in msg
  no_gen = {k: x for k, x in tiny_state.items() if not k.startswith("generator.")}
  with pytest.raises(UserError, match="no 'generator' entries"):
    convert_fomm.fomm_variables(no_gen, tiny_fomm, 64)
  # A vox-256 checkpoint against the tiny config: a clear error, not a crash.
  vox = FOMM.from_config(load_config("fomm_vox256").model)
  with pytest.raises(UserError, match="does not fit the config"):
    convert_fomm.fomm_variables(tiny_state, vox, 256)


def test_flatten_drops_optimisers_and_numbers():
  tree = {"generator": {"a.weight": np.ones((2,))}, "optimizer_generator": {"state": {}},
          "epoch": 3, "kp_detector": {"b": {"c": np.zeros((1,))}}}
  assert sorted(checkpoint_io.flatten(tree)) == ["generator.a.weight", "kp_detector.b.c"]


def test_read_errors(tmp_path):
  with pytest.raises(UserError, match="not found"):
    checkpoint_io.read_checkpoint(str(tmp_path / "nope.pth.tar"))
  (tmp_path / "x.txt").write_text("hi")
  with pytest.raises(UserError, match="unknown checkpoint type"):
    checkpoint_io.read_checkpoint(str(tmp_path / "x.txt"))
  (tmp_path / "bad.npz").write_bytes(b"not a zip")
  with pytest.raises(UserError, match="not a readable .npz"):
    checkpoint_io.read_checkpoint(str(tmp_path / "bad.npz"))


@pytest.mark.slow
def test_cli_npz_to_run_folder_and_load(tmp_path, tiny_state, tiny_fomm):
  """CLI on a flat .npz (no torch) -> run folder -> deepjax.load gives the same variables."""
  npz = str(tmp_path / "tiny.npz")
  np.savez(npz, **tiny_state)
  out = str(tmp_path / "run")
  r = _convert(["--from=fomm", f"--input={npz}", f"--config={TINY_CONFIG}", f"--output={out}"])
  assert r.returncode == 0, r.stderr
  assert os.path.isdir(os.path.join(out, "checkpoints", "0", "state"))
  import deepjax  # pylint: disable=import-outside-toplevel
  model, variables, config = deepjax.load(out)
  assert isinstance(model, FOMM) and config.task == "motion"
  assert config.converted_from.input == npz
  _leaves_equal(variables, convert_fomm.fomm_variables(tiny_state, tiny_fomm, 64))
  # A second conversion into the same folder is refused; so is a mismatched config.
  r = _convert(["--from=fomm", f"--input={npz}", f"--config={TINY_CONFIG}", f"--output={out}"])
  assert r.returncode == 2 and "already holds checkpoints" in r.stderr
  r = _convert(["--from=fomm", f"--input={npz}",
                f"--config={os.path.join(REPO, 'configs', 'fomm_vox256.py')}",
                f"--output={tmp_path / 'run2'}"])
  assert r.returncode == 2 and "problems" in r.stderr and "Traceback" not in r.stderr
  assert not os.path.exists(tmp_path / "run2" / "checkpoints" / "0")
  r = _convert(["--from=fomm", f"--input={npz}",
                f"--config={os.path.join(REPO, 'configs', 'faceswap_ae.py')}",
                f"--output={tmp_path / 'run3'}"])
  assert r.returncode == 2 and "task 'motion'" in r.stderr


def _torch():
  try:
    import torch  # pylint: disable=import-outside-toplevel
    return torch
  except ImportError:
    return None


class _NotAWeight:  # pickled by reference: weights_only refuses it
  pass


@pytest.mark.skipif(_torch() is None, reason="torch not installed (extra 'torch')")
@pytest.mark.parametrize("zipfile", [True, False])
def test_read_torch_checkpoint_as_published(tmp_path, tiny_state, zipfile):
  """The reference's layout (state dicts + optimisers + epoch), new and legacy formats."""
  torch = _torch()
  tree = {"epoch": 99}
  for part in ("kp_detector", "generator"):
    tree[part] = {k[len(part) + 1:]: torch.from_numpy(np.array(v))
                  for k, v in tiny_state.items() if k.startswith(part + ".")}
  tree["discriminator"] = {"discs.1.conv.weight_orig": torch.zeros(1, 2, 4, 4)}
  tree["optimizer_generator"] = {"state": {0: {"step": torch.tensor(3.0)}},
                                 "param_groups": [{"lr": 2e-4, "params": [0]}]}
  path = str(tmp_path / "cpk.pth.tar")
  torch.save(tree, path, _use_new_zipfile_serialization=zipfile)
  state = checkpoint_io.read_checkpoint(path)
  assert set(state) == set(tiny_state) | {"discriminator.discs.1.conv.weight_orig"}
  for k, v in tiny_state.items():
    np.testing.assert_array_equal(state[k], v)
  # Anything beyond tensors and containers is refused (no pickled code runs).
  evil = str(tmp_path / "evil.pth")
  torch.save({"generator": {"w": torch.zeros(1)}, "x": _NotAWeight()}, evil)
  with pytest.raises(UserError, match="refused"):
    checkpoint_io.read_checkpoint(evil)
  with open(str(tmp_path / "plain.pt"), "wb") as f:
    pickle.dump({"a": 1}, f)
  with pytest.raises(UserError):
    checkpoint_io.read_checkpoint(str(tmp_path / "plain.pt"))
