"""deepjax FOMM == the reference PyTorch first-order-model (fixture, no torch needed).

tests/fixtures/fomm_parity.npz holds, for the model sizes of configs/fomm_vox256.py:tiny and
configs/fomm_vox256.py, the reference's state-dict names and shapes, the seed of its
random weights (tests/fixtures/make_fomm_parity_fixture.py's numpy recipe, rebuilt here)
and the reference outputs in eval mode. The weights go through the converter
(deepjax.convert.fomm) exactly as a published checkpoint does; then keypoints, Jacobians,
generated frames and relatively-animated frames are compared (max abs <= 1e-4, float32).
"""
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.convert import fomm as convert_fomm
from deepjax.models.motion.fomm import FOMM
from deepjax.ops import keypoints as kpo

# The reference's vox-256 normalization_params (deepjax animate's defaults).
VOX256_NORMALIZATION = dict(adapt_movement_scale=False, use_relative_movement=True,
                            use_relative_jacobian=True)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "fomm_parity.npz")
ATOL = 1e-4


def _recipe():
  spec = importlib.util.spec_from_file_location(
      "make_fomm_parity_fixture", os.path.join(HERE, "fixtures", "make_fomm_parity_fixture.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


RECIPE = _recipe()


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(FIXTURE))


def _setup(ref, size_name):
  cfg_name, cfg_arg, seed, num_driving = RECIPE.SETTINGS[size_name]
  config = load_config(cfg_name, cfg_arg)
  p = size_name + "/"
  names_shapes = json.loads(str(ref[p + "names_shapes"]))
  state = RECIPE.random_state_dict(names_shapes, int(ref[p + "seed"]))
  np.testing.assert_allclose(RECIPE.checksum(state), ref[p + "checksum"], rtol=1e-9,
                             err_msg="weight recipe changed: regenerate the fixture")
  source, driving = RECIPE.random_inputs(seed, config.data.size, num_driving)
  np.testing.assert_allclose([source.sum(), driving.sum()], ref[p + "inputs_checksum"],
                             rtol=1e-6, err_msg="input recipe changed: regenerate the fixture")
  fomm = FOMM.from_config(config.model)
  variables = convert_fomm.fomm_variables(state, fomm, config.data.size)
  return config, fomm, variables, jnp.asarray(source), jnp.asarray(driving)


def _max_abs(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _check(ref, size_name):
  config, fomm, variables, source, driving = _setup(ref, size_name)
  p = size_name + "/"
  detect = jax.jit(fomm.detect)
  kp_s, kp_d = detect(variables, source), detect(variables, driving)
  diffs = {}
  for which, kp in (("source", kp_s), ("driving", kp_d)):
    for f in ("value", "jacobian"):
      diffs[f"kp_{which}_{f}"] = _max_abs(kp[f], ref[p + f"kp_{which}_{f}"])
  # End to end: deepjax's own keypoints drive deepjax's generator.
  t = driving.shape[0]

  @jax.jit
  def generate(v, kp_s, kp_d):
    src = jnp.broadcast_to(source, (t,) + source.shape[1:])
    return fomm.apply_generator(v, src, kpo.broadcast_kp(kp_s, t), kp_d)[0]

  out = generate(variables, kp_s, kp_d)
  diffs["prediction"] = _max_abs(out["prediction"], ref[p + "prediction"])
  for key in ("deformed", "occlusion_map", "mask"):
    if p + key in ref:
      diffs[key] = _max_abs(out[key], ref[p + key])
  if p + "animated" in ref:
    initial = jax.tree.map(lambda x: x[:1], kp_d)
    kp_norm = kpo.relative_motion(kp_s, kp_d, initial, **VOX256_NORMALIZATION)
    animated = jax.jit(fomm.animate)(variables, source, kp_s, kp_norm)["prediction"]
    diffs["animated"] = _max_abs(animated, ref[p + "animated"])
  print(size_name, {k: f"{v:.2e}" for k, v in diffs.items()})
  bad = {k: v for k, v in diffs.items() if not v <= ATOL}
  assert not bad, f"{size_name}: max abs differences over {ATOL}: {bad}"
  # The comparison is not vacuous: keypoints spread out, frames not flat.
  assert np.ptp(ref[p + "kp_source_value"]) > 0.1 and ref[p + "prediction"].std() > 0.05


def test_fixture_is_small_and_from_pinned_torch(ref):
  assert os.path.getsize(FIXTURE) < 4e6
  assert str(ref["torch_version"]).startswith("2.")


def test_tiny_matches_reference(ref):
  _check(ref, "tiny")


@pytest.mark.slow
def test_vox256_matches_reference(ref):
  _check(ref, "vox256")


def test_reference_names_all_mapped(ref):
  """Every reference entry is expected by the converter, and nothing else is (vox-256)."""
  config = load_config("fomm_vox256")
  fomm = FOMM.from_config(config.model)
  templates = fomm.init_shapes((1, 256, 256, 3))
  names_shapes = json.loads(str(ref["vox256/names_shapes"]))
  got = {}
  for part in convert_fomm.PARTS:
    got.update({f"{part}.{k}": v for k, v in
                convert_fomm.expected_entries(templates[part]).items()})
  ref_entries = {n: tuple(s) for n, s in names_shapes
                 if not n.endswith("num_batches_tracked") and not n.endswith("down.weight")}
  assert got == ref_entries
