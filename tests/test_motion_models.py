"""First-order motion modules: equality with the reference PyTorch code, shapes, invariants."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.models import hourglass as hg
from deepjax.models.motion.fomm import FOMM, generator_losses, variables_from_torch
from deepjax.models.motion.generator import OcclusionAwareGenerator
from deepjax.models.motion.keypoint_detector import KeypointDetector

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "fomm_tiny_torch.npz")

# Must match tests/fixtures/make_fomm_fixture.py.
KP = dict(block_expansion=4, num_kp=3, num_channels=3, max_features=16, num_blocks=2,
          temperature=0.1, estimate_jacobian=True, scale_factor=0.5)
GEN = dict(num_channels=3, num_kp=3, block_expansion=4, max_features=16, num_down_blocks=2,
           num_bottleneck_blocks=2, estimate_occlusion_map=True, estimate_jacobian=True,
           dense_motion_params=dict(block_expansion=4, max_features=16, num_blocks=2,
                                    scale_factor=0.5))


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(FIXTURE))


@pytest.fixture(scope="module")
def fixture_model(ref):
  fomm = FOMM(KeypointDetector(**KP), OcclusionAwareGenerator(**GEN))
  template = fomm.init(jax.random.key(0), (2, 32, 32, 3))
  variables = {}
  for part in ("kp_detector", "generator"):
    state = {k[len(part) + 1:]: v for k, v in ref.items() if k.startswith(part + ".")}
    variables[part] = variables_from_torch(state, template[part], part)
  return fomm, variables


def _kp(ref, mode, which):
  return {"value": jnp.asarray(ref[f"{mode}/kp_{which}_value"]),
          "jacobian": jnp.asarray(ref[f"{mode}/kp_{which}_jacobian"])}


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_matches_reference_pytorch(ref, fixture_model, mode):
  fomm, variables = fixture_model
  train = mode == "train"
  source, driving = jnp.asarray(ref["source"]), jnp.asarray(ref["driving"])
  kp_s, _ = fomm.apply_kp_detector(variables, source, train)
  kp_d, _ = fomm.apply_kp_detector(variables, driving, train)
  for which, kp in (("source", kp_s), ("driving", kp_d)):
    for f in ("value", "jacobian"):
      np.testing.assert_allclose(np.asarray(kp[f]), ref[f"{mode}/kp_{which}_{f}"], atol=2e-5,
                                 rtol=1e-4, err_msg=f"{which} {f}")
  # Feed the reference's keypoints so the generator is compared on its own.
  out, _ = fomm.apply_generator(variables, source, _kp(ref, mode, "source"),
                                _kp(ref, mode, "driving"), train)
  for key in ("mask", "sparse_deformed", "occlusion_map", "deformed", "prediction"):
    np.testing.assert_allclose(np.asarray(out[key]), ref[f"{mode}/{key}"], atol=5e-5, rtol=1e-4,
                               err_msg=key)


def test_anti_alias_matches_direct_2d_blur():
  # Independent version: full 2-D kernel, 'same' zero-padded blur in numpy, then x[::s].
  rng = np.random.default_rng(0)
  x = rng.random((1, 16, 12, 2)).astype(np.float32)
  for scale in (0.5, 0.25):
    g = hg.gaussian_kernel_1d(scale).astype(np.float64)
    k2 = np.outer(g, g)
    assert abs(k2.sum() - 1) < 1e-6
    size = {0.5: 5, 0.25: 13}[scale]
    assert len(g) == size  # 2 * round(4 sigma) + 1, sigma = (1/scale - 1) / 2
    r = size // 2
    pad = np.pad(x[0].astype(np.float64), ((r, r), (r, r), (0, 0)))
    blur = np.zeros_like(x[0], np.float64)
    for dy in range(size):
      for dx in range(size):
        blur += k2[dy, dx] * pad[dy:dy + 16, dx:dx + 12]
    step = int(1 / scale)
    out = np.asarray(hg.anti_alias_interpolate(jnp.asarray(x), scale))
    np.testing.assert_allclose(out[0], blur[::step, ::step], atol=1e-5)
  assert hg.anti_alias_interpolate(jnp.asarray(x), 1.0) is not None


def test_torch_import_rejects_mismatch(ref, fixture_model):
  fomm, variables = fixture_model
  state = {k[len("generator."):]: v for k, v in ref.items() if k.startswith("generator.")}
  bad = dict(state)
  bad["final.weight"] = np.zeros((3, 4, 5, 5), np.float32)
  with pytest.raises(UserError, match="final.weight"):
    variables_from_torch(bad, variables["generator"])
  missing = dict(state)
  del missing["final.bias"]
  with pytest.raises(UserError, match="missing"):
    variables_from_torch(missing, variables["generator"])
