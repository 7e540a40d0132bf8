"""grid_sample / interpolate_bilinear against PyTorch outputs stored in a fixture.

The fixture comes from tests/fixtures/make_grid_sample_fixture.py (torch 2.13, CPU);
torch is not needed to run these tests.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.ops import sampling

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "grid_sample_torch.npz")


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(FIXTURE))


@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_torch(ref, align_corners):
  tag = "ac" if align_corners else "noac"
  out = sampling.grid_sample(jnp.asarray(ref["image"]), jnp.asarray(ref["grid"]),
                             align_corners=align_corners)
  np.testing.assert_allclose(np.asarray(out), ref[f"out_{tag}"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_padding_modes_match_torch(ref, mode, align_corners):
  tag = "ac" if align_corners else "noac"
  out = sampling.grid_sample(jnp.asarray(ref["image"]), jnp.asarray(ref["grid_far"]),
                             align_corners=align_corners, padding_mode=mode)
  np.testing.assert_allclose(np.asarray(out), ref[f"out_{mode}_{tag}"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_gradients_match_torch(ref, align_corners):
  tag = "ac" if align_corners else "noac"
  cot = jnp.asarray(ref["cotangent"])

  def f(image, grid):
    return jnp.sum(sampling.grid_sample(image, grid, align_corners=align_corners) * cot)

  dimage, dgrid = jax.grad(f, argnums=(0, 1))(jnp.asarray(ref["image"]), jnp.asarray(ref["grid"]))
  np.testing.assert_allclose(np.asarray(dimage), ref[f"dimage_{tag}"], atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(dgrid), ref[f"dgrid_{tag}"], atol=1e-4, rtol=1e-4)


def test_grid_sample_identity_grid_align_corners_true():
  # linspace(-1, 1) over pixel centres samples every pixel exactly when align_corners=True.
  rng = np.random.default_rng(0)
  img = rng.standard_normal((1, 4, 6, 2)).astype(np.float32)
  xs, ys = np.linspace(-1, 1, 6), np.linspace(-1, 1, 4)
  grid = np.stack(np.meshgrid(xs, ys), -1)[None].astype(np.float32)
  out = sampling.grid_sample(jnp.asarray(img), jnp.asarray(grid), align_corners=True)
  np.testing.assert_allclose(np.asarray(out), img, atol=1e-6)
  # With align_corners=False, pixel centres are at (2i + 1) / n - 1 and the image edge
  # x = -1 sees half of the border pixel (the other half is zero padding).
  yc = (2 * np.arange(4) + 1) / 4 - 1
  grid = np.stack(np.broadcast_arrays(np.full((4, 1), -1.0), yc[:, None]), -1)[None]
  out = sampling.grid_sample(jnp.asarray(img), jnp.asarray(grid, jnp.float32), align_corners=False)
  np.testing.assert_allclose(np.asarray(out)[0, :, 0], 0.5 * img[0, :, 0], atol=1e-6)


def test_grid_sample_jits_and_keeps_dtype():
  img = jnp.ones((2, 3, 3, 1), jnp.float32)
  grid = jnp.zeros((2, 5, 5, 2), jnp.float32)
  out = jax.jit(sampling.grid_sample)(img, grid)
  assert out.shape == (2, 5, 5, 1) and out.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out), 1.0)


@pytest.mark.parametrize("name", ["down", "up", "odd"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_interpolate_bilinear_matches_torch(ref, name, align_corners):
  tag = "ac" if align_corners else "noac"
  expected = ref[f"resize_{name}_{tag}"]
  out = sampling.interpolate_bilinear(jnp.asarray(ref[f"resize_{name}_in"]), expected.shape[1:3],
                                      align_corners=align_corners)
  np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5, rtol=1e-5)
