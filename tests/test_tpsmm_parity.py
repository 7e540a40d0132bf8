"""deepjax TPSMM == the reference PyTorch Thin-Plate-Spline-Motion-Model (fixture, no torch
needed except for the checkpoint round trip).

tests/fixtures/tpsmm_parity.npz holds, for configs/tpsmm_vox256.py and its `:tiny`
argument, the reference's state-dict names and shapes (its parameter counts), the seed of
its random weights (tests/fixtures/make_tpsmm_parity_fixture.py's numpy recipe, rebuilt
here) and, for tiny, the reference outputs in eval mode. The weights go through the
converter (deepjax.convert.tpsmm) as a published checkpoint does; then keypoints,
background affine, flow, contribution and occlusion maps, frames, TPS dropout, the AVD
network, the random TPS of the equivariance loss and the warp / background losses are
compared (max abs <= 1e-4, float32).
"""
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.convert import checkpoint_io
from deepjax.convert import fomm as convert_fomm
from deepjax.convert import tpsmm as convert_tpsmm
from deepjax.models.motion import tpsmm as tpsmm_lib
from deepjax.models.motion.tpsmm import TPSMM
from deepjax.ops import keypoints as kpo
from deepjax.ops import tps

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "tpsmm_parity.npz")
ATOL = 1e-4
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _recipe():
  spec = importlib.util.spec_from_file_location(
      "make_tpsmm_parity_fixture", os.path.join(HERE, "fixtures", "make_tpsmm_parity_fixture.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


RECIPE = _recipe()


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(FIXTURE))


def _state(ref, size_name):
  p = size_name + "/"
  names_shapes = json.loads(str(ref[p + "names_shapes"]))
  state = RECIPE.random_state_dict(names_shapes, int(ref[p + "seed"]))
  np.testing.assert_allclose(RECIPE.checksum(state), ref[p + "checksum"], rtol=1e-9,
                             err_msg="weight recipe changed: regenerate the fixture")
  return names_shapes, state


def _is_param(name):
  return not name.endswith(BUFFERS) and not name.endswith("down.weight")


def _max_abs(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_fixture_is_small(ref):
  assert os.path.getsize(FIXTURE) < 2e6
  assert str(ref["torch_version"]).startswith("2.")


@pytest.mark.parametrize("size_name,cfg_arg", [("tiny", "tiny"), ("vox256", None)])
def test_names_and_parameter_counts_equal_reference(ref, size_name, cfg_arg):
  """Every reference entry maps onto a Flax variable of the same size and nothing else
  exists; the per-part parameter counts equal the reference's."""
  config = load_config("tpsmm_vox256", cfg_arg)
  model = TPSMM.from_config(config.model)
  templates = model.init_shapes((1, config.data.size, config.data.size, 3))
  names_shapes = json.loads(str(ref[size_name + "/names_shapes"]))
  ref_entries = {n: tuple(s) for n, s in names_shapes
                 if not n.endswith("num_batches_tracked") and not n.endswith("down.weight")}
  got = {f"{part}.{k}": v for part in model.parts
         for k, v in convert_fomm.expected_entries(templates[part]).items()}
  assert got == ref_entries
  ref_counts = json.loads(str(ref[size_name + "/param_counts"]))
  counts = {part: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(templates[part]["params"]))
            for part in model.parts}
  from_shapes = {part: sum(int(np.prod(s)) for n, s in names_shapes
                           if n.startswith(part + ".") and _is_param(n))
                 for part in model.parts}
  assert counts == ref_counts == from_shapes
  if size_name == "vox256":
    assert sum(counts.values()) == 87_679_142


def test_tiny_matches_reference(ref):
  config = load_config("tpsmm_vox256", "tiny")
  model = TPSMM.from_config(config.model)
  _, state = _state(ref, "tiny")
  variables, absent = convert_tpsmm.tpsmm_variables(state, model, config.data.size)
  assert not absent
  p = "tiny/"
  source, driving = RECIPE.random_inputs(int(ref[p + "seed"]), config.data.size, 2)
  np.testing.assert_allclose([source.sum(), driving.sum()], ref[p + "inputs_checksum"],
                             rtol=1e-6, err_msg="input recipe changed: regenerate the fixture")
  src = jnp.asarray(np.repeat(source, 2, axis=0))
  drv = jnp.asarray(driving)
  equi = {"theta": jnp.asarray(ref[p + "equi_theta"]),
          "control_points": kpo.make_coordinate_grid(5, 5).reshape(-1, 2),
          "control_params": jnp.asarray(ref[p + "equi_control_params"])}

  @jax.jit
  def run(v, uniform):
    kp = model.detect(v, jnp.concatenate([src, drv]))["value"]
    kp_s, kp_d = {"value": kp[:2]}, {"value": kp[2:]}
    bg = model.bg_motion(v, src, drv)[0]
    gen = model.generate(v, src, kp_s, kp_d, bg)
    dense = model.dense_motion_network
    dropped = dense.apply(v["dense_motion_network"], src, kp_d, kp_s, bg, dropout_p=0.3,
                          dropout_uniform=uniform)
    return dict(
        kp_source=kp_s["value"], kp_driving=kp_d["value"], bg_param=bg,
        prediction=gen["prediction"], deformed=gen["deformed"],
        deformation=gen["deformation"], contribution_maps=gen["contribution_maps"],
        deformed_source=gen["deformed_source"],
        warp_loss=tpsmm_lib.warp_loss(model, v, drv, gen),
        bg_loss=tpsmm_lib.bg_loss(bg, model.bg_motion(v, drv, src)[0]),
        dropout_contribution_maps=dropped["contribution_maps"],
        avd_kp=model.avd(v, kp_s, kp_d)["value"],
        equi_frame=tps.tps_transform_frame(equi, drv, True, "tpsmm"),
        equi_kp=tps.tps_warp_coordinates(equi, kp_d["value"], "tpsmm"),
        **{f"occlusion_map_{i}": o for i, o in enumerate(gen["occlusion_map"])})

  out = run(variables, jnp.asarray(ref[p + "dropout_uniform"]))
  diffs = {k: _max_abs(v, ref[p + k]) for k, v in out.items()}
  print({k: f"{v:.2e}" for k, v in diffs.items()})
  bad = {k: v for k, v in diffs.items() if not v <= ATOL}
  assert not bad, f"max abs differences over {ATOL}: {bad}"
  # Not vacuous: keypoints spread, frames not flat, masks not saturated, dropout dropped.
  assert np.ptp(ref[p + "kp_source"]) > 0.5 and ref[p + "prediction"].std() > 0.05
  assert 0.05 < ref[p + "occlusion_map_3"].mean() < 0.95
  assert (ref[p + "dropout_uniform"][:, 1:] >= 0.7).any()


def test_torch_checkpoint_round_trip(ref, tmp_path):
  """A checkpoint with the reference's own names and shapes saved by torch.save converts
  to Flax variables and back to the same state dict."""
  torch = pytest.importorskip("torch")
  config = load_config("tpsmm_vox256", "tiny")
  model = TPSMM.from_config(config.model)
  _, state = _state(ref, "tiny")
  nested = {}
  for name, value in state.items():
    part, _, rest = name.partition(".")
    nested.setdefault(part, {})[rest] = torch.from_numpy(value)
  path = str(tmp_path / "tiny.pth.tar")
  torch.save(dict(nested, epoch=3, optimizer={"state": {}}), path)
  read = checkpoint_io.read_checkpoint(path)
  variables, absent = convert_tpsmm.tpsmm_variables(read, model, config.data.size)
  assert not absent
  back = convert_tpsmm.torch_state(variables)
  expected = {n: v for n, v in state.items()
              if not n.endswith("num_batches_tracked") and not n.endswith("down.weight")}
  assert sorted(back) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_converter_lists_every_problem(ref):
  config = load_config("tpsmm_vox256", "tiny")
  model = TPSMM.from_config(config.model)
  _, state = _state(ref, "tiny")
  state = dict(state)
  del state["kp_detector.fg_encoder.fc.bias"]
  state["inpainting_network.extra.weight"] = np.zeros((3,), np.float32)
  state["dense_motion_network.maps.weight"] = np.zeros((1, 2, 7, 7), np.float32)
  with pytest.raises(Exception) as e:
    convert_tpsmm.tpsmm_variables(state, model, config.data.size, what="bad.pth.tar")
  msg = str(e.value)
  assert "3 problems" in msg and "missing kp_detector.fg_encoder.fc.bias" in msg
  assert "unexpected inpainting_network.extra.weight" in msg
  assert "shape of dense_motion_network.maps.weight" in msg
  no_avd = {n: v for n, v in _state(ref, "tiny")[1].items() if not n.startswith("avd_")}
  _, absent = convert_tpsmm.tpsmm_variables(no_avd, model, config.data.size)
  assert absent == ["avd_network"]
