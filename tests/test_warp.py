"""Tests for deepjax.ops.warp against scipy.ndimage references and exact identities."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from deepjax.errors import UserError
from deepjax.ops import augment, warp

OFF = {"warp": False, "rotation_deg": 0.0, "zoom": 0.0, "shift": 0.0, "flip_prob": 0.0}


def _images(b, h=24, w=20, c=3, seed=0):
  return np.random.default_rng(seed).uniform(size=(b, h, w, c)).astype(np.float32)


def _smooth_images(b, h=32, w=32, c=3, seed=0):
  x = np.random.default_rng(seed).uniform(size=(b, h, w, c))
  return ndimage.gaussian_filter(x, sigma=(0, 3, 3, 0)).astype(np.float32)


@pytest.mark.parametrize("mode,scipy_mode", [("edge", "nearest"), ("reflect", "reflect"),
                                             ("zeros", "grid-constant")])
def test_remap_matches_scipy_map_coordinates(mode, scipy_mode):
  rng = np.random.default_rng(1)
  images = _images(2, 9, 11, 2, seed=2)
  # Coordinates well outside the image too, to exercise the border modes.
  coords = np.stack([rng.uniform(-4, 15, size=(2, 7, 6)), rng.uniform(-4, 13, size=(2, 7, 6))],
                    axis=-1).astype(np.float32)
  # Some exactly integer coordinates.
  coords[:, 0, :, :] = np.round(coords[:, 0, :, :])
  got = np.asarray(warp.remap(jnp.asarray(images), jnp.asarray(coords), mode))
  want = np.zeros_like(got)
  for b in range(2):
    for c in range(2):
      want[b, ..., c] = ndimage.map_coordinates(
          images[b, ..., c].astype(np.float64), [coords[b, ..., 1], coords[b, ..., 0]],
          order=1, mode=scipy_mode, cval=0.0)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_remap_rejects_unknown_mode():
  with pytest.raises(UserError):
    warp.remap(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 4, 2)), mode="wrap")


@pytest.mark.parametrize("batch", [1, 8])
def test_random_warp_zero_jitter_is_identity(batch):
  x = _images(batch)
  fn = jax.jit(lambda k, im: warp.random_warp(k, im, jitter=0.0))
  np.testing.assert_allclose(np.asarray(fn(jax.random.key(0), x)), x, atol=1e-5)


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_control_grid_interpolates_exactly_at_control_points(interpolation):
  rng = np.random.default_rng(3)
  offsets = rng.normal(size=(2, 5, 5, 2)).astype(np.float32)
  field = np.asarray(warp.interpolate_control_grid(jnp.asarray(offsets), 17, 33, interpolation))
  assert field.shape == (2, 17, 33, 2)
  # Control g sits at pixel g*(n-1)/(G-1): rows 0,4,..,16 and columns 0,8,..,32.
  np.testing.assert_allclose(field[:, ::4, ::8], offsets, atol=1e-5)
  if interpolation == "linear":
    # Half way between two control rows the linear field is their average.
    np.testing.assert_allclose(field[:, 2, ::8], 0.5 * (offsets[:, 0] + offsets[:, 1]), atol=1e-5)
    # A convex combination never exceeds the control values.
    assert np.abs(field).max() <= np.abs(offsets).max() + 1e-5


def test_random_warp_moves_pixels_along_its_field():
  # On a linear ramp image I(x, y) = a x + b y, warping by (dx, dy) adds a dx + b dy
  # wherever the sample stays inside the image.
  h, w = 40, 48
  ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  a, b = 0.01, 0.02
  ramp = (a * xs + b * ys).astype(np.float32)[None, :, :, None]
  key = jax.random.key(7)
  jitter = 0.02
  out = np.asarray(warp.random_warp(key, jnp.asarray(ramp), jitter=jitter))
  field = np.asarray(warp.random_warp_field(key, 1, h, w, 5, jitter))
  sx, sy = xs + field[0, ..., 0], ys + field[0, ..., 1]
  inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
  assert inside.mean() > 0.5
  want = ramp[0, ..., 0] + a * field[0, ..., 0] + b * field[0, ..., 1]
  np.testing.assert_allclose(out[0, ..., 0][inside], want[inside], atol=1e-5)


def test_random_warp_changes_deterministic_and_key_dependent():
  x = _smooth_images(4)
  fn = jax.jit(lambda k, im: warp.random_warp(k, im, jitter=5 / 256))
  out1 = np.asarray(fn(jax.random.key(0), x))
  out2 = np.asarray(fn(jax.random.key(0), x))
  out3 = np.asarray(fn(jax.random.key(1), x))
  np.testing.assert_array_equal(out1, out2)
  assert np.abs(out1 - x).mean() > 1e-4
  assert np.abs(out1 - out3).mean() > 1e-4
  # Every image in the batch gets its own field.
  same = np.repeat(x[:1], 4, axis=0)
  out = np.asarray(fn(jax.random.key(2), same))
  assert np.abs(out[0] - out[1]).mean() > 1e-5


def test_warp_field_displacement_is_bounded():
  h = w = 64
  jitter = 5 / 256
  field = np.asarray(warp.random_warp_field(jax.random.key(0), 64, h, w, 5, jitter))
  sigma = jitter * w
  mean_abs = np.abs(field).mean()
  # Control points: E|N(0, s)| = 0.80 s; bilinear mixing lowers the std to >= s / 2.
  assert 0.35 * sigma < mean_abs < 0.8 * sigma
  assert np.abs(field.mean()) < 0.1 * sigma


@pytest.mark.parametrize("batch", [1, 8])
def test_random_affine_flip_only_is_np_flip(batch):
  x = _images(batch)
  fn = jax.jit(lambda k, im: warp.random_affine(k, im, 0.0, 0.0, 0.0, flip_prob=1.0))
  np.testing.assert_allclose(np.asarray(fn(jax.random.key(0), x)), np.flip(x, axis=2), atol=1e-6)
  ident = warp.random_affine(jax.random.key(0), x, 0.0, 0.0, 0.0, flip_prob=0.0)
  np.testing.assert_allclose(np.asarray(ident), x, atol=1e-5)


def test_random_affine_flips_about_half_the_images():
  x = _images(64, 8, 8, 1)
  out = np.asarray(warp.random_affine(jax.random.key(3), x, 0.0, 0.0, 0.0, flip_prob=0.5))
  flipped = np.all(np.isclose(out, np.flip(x, axis=2), atol=1e-6), axis=(1, 2, 3))
  kept = np.all(np.isclose(out, x, atol=1e-6), axis=(1, 2, 3))
  assert np.all(flipped | kept)
  assert 16 <= flipped.sum() <= 48


def test_random_affine_matches_scipy_affine_transform():
  x = _images(3, 20, 24, 2, seed=4)
  key = jax.random.key(5)
  out = np.asarray(warp.random_affine(key, x, rotation_deg=30.0, zoom=0.2, shift=0.1,
                                      flip_prob=0.5))
  mats = np.asarray(warp.random_affine_matrices(key, 3, 20, 24, 30.0, 0.2, 0.1, 0.5))
  for b in range(3):
    m = mats[b]
    # scipy works in (row, col) = (y, x): swap the axes of the (x, y) matrix.
    matrix = np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]])
    offset = np.array([m[1, 2], m[0, 2]])
    for c in range(2):
      want = ndimage.affine_transform(x[b, ..., c].astype(np.float64), matrix, offset,
                                      order=1, mode="nearest")
      np.testing.assert_allclose(out[b, ..., c], want, atol=2e-5)


def test_affine_rotates_zooms_shifts_about_the_centre():
  # Hand-worked: 90 degrees is not sampled directly, so check the matrix at the
  # extremes of the ranges by composing the definition with the sampled values.
  b, h, w = 16, 30, 40
  mats = np.asarray(warp.random_affine_matrices(jax.random.key(9), b, h, w, 20.0, 0.1, 0.0, 0.0))
  lin = mats[:, :2, :2]
  # Pure rotation/zoom: the linear part is (1/s) R^T, so det = 1/s^2 in [1/1.1^2, 1/0.9^2],
  # and rows are orthogonal with equal norms.
  det = np.linalg.det(lin)
  assert np.all(det > 1 / 1.1**2 - 1e-5) and np.all(det < 1 / 0.9**2 + 1e-5)
  np.testing.assert_allclose(np.sum(lin[:, 0] * lin[:, 1], -1), 0.0, atol=1e-6)
  angles = np.degrees(np.abs(np.arctan2(lin[:, 1, 0], lin[:, 0, 0])))
  assert np.all(angles <= 20.0 + 1e-4) and angles.max() > 5.0
  # The centre pixel is a fixed point without shift.
  centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
  np.testing.assert_allclose(mats @ centre, np.broadcast_to(centre, (b, 3)), atol=1e-4)


def test_transform_landmarks_follows_the_image():
  h = w = 48
  rng = np.random.default_rng(6)
  b = 4
  pts = rng.uniform(-0.5, 0.5, size=(b, 1, 2)).astype(np.float32)
  ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  px = (pts + 1) / 2 * np.array([w, h]) - 0.5
  blobs = np.exp(-((xs - px[:, :, 0, None]) ** 2 + (ys - px[:, :, 1, None]) ** 2) / (2 * 1.5**2))
  blobs = blobs[..., None].astype(np.float32)                # (b, h, w, 1)
  key = jax.random.key(11)
  args = (20.0, 0.1, 0.05, 0.5)
  out = np.asarray(warp.random_affine(key, blobs, *args, mode="zeros"))[..., 0]
  mats = warp.random_affine_matrices(key, b, h, w, *args)
  moved = np.asarray(warp.transform_landmarks(mats, jnp.asarray(pts), h, w))
  total = out.sum(axis=(1, 2))
  cx = (out * xs).sum(axis=(1, 2)) / total
  cy = (out * ys).sum(axis=(1, 2)) / total
  want = (moved[:, 0] + 1) / 2 * np.array([w, h]) - 0.5
  np.testing.assert_allclose(np.stack([cx, cy], -1), want, atol=0.1)


@pytest.mark.parametrize("cfg", [OFF, ml_collections.ConfigDict(OFF)])
def test_augment_identity_when_everything_off(cfg):
  x = _images(2)
  out = jax.jit(lambda k, im: augment.augment(k, im, cfg))(jax.random.key(0), x)
  np.testing.assert_array_equal(np.asarray(out), x)
  inputs, targets = augment.augment_pair(jax.random.key(0), x, cfg)
  np.testing.assert_array_equal(np.asarray(inputs), x)
  np.testing.assert_array_equal(np.asarray(targets), x)


@pytest.mark.parametrize("batch", [1, 8])
def test_augment_pair_targets_equal_inputs_without_warp(batch):
  x = _images(batch)
  cfg = {"warp": False, "rotation_deg": 10.0, "zoom": 0.05, "shift": 0.05, "flip_prob": 0.5}
  fn = jax.jit(lambda k, im: augment.augment_pair(k, im, cfg))
  inputs, targets = fn(jax.random.key(1), x)
  np.testing.assert_array_equal(np.asarray(inputs), np.asarray(targets))
  assert np.abs(np.asarray(targets) - x).mean() > 1e-3
  k_affine, _ = jax.random.split(jax.random.key(1))
  want = warp.random_affine(k_affine, x, 10.0, 0.05, 0.05, 0.5)
  np.testing.assert_allclose(np.asarray(targets), np.asarray(want), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 8])
def test_augment_pair_warps_inputs_only(batch):
  # With a pure flip the composed single resampling equals flip-then-warp exactly.
  x = _images(batch)
  cfg = ml_collections.ConfigDict({"warp": True, "warp_jitter": 0.03, "rotation_deg": 0.0,
                                   "zoom": 0.0, "shift": 0.0, "flip_prob": 1.0})
  key = jax.random.key(4)
  inputs, targets = jax.jit(lambda k, im: augment.augment_pair(k, im, cfg))(key, x)
  flipped = np.flip(x, axis=2)
  np.testing.assert_allclose(np.asarray(targets), flipped, atol=1e-6)
  _, k_warp = jax.random.split(key)
  want = warp.random_warp(k_warp, jnp.asarray(flipped), jitter=0.03)
  np.testing.assert_allclose(np.asarray(inputs), np.asarray(want), atol=1e-5)
  assert np.abs(np.asarray(inputs) - flipped).mean() > 1e-3
  # augment is the inputs half of augment_pair.
  np.testing.assert_allclose(np.asarray(augment.augment(key, x, cfg)), np.asarray(inputs),
                             atol=1e-5)


def test_augment_pair_composes_affine_and_warp():
  # General case: one resampling vs. affine-then-warp agree away from the borders.
  x = _smooth_images(2, 48, 48)
  cfg = {"warp": True, "warp_jitter": 0.02, "rotation_deg": 10.0, "zoom": 0.05,
         "shift": 0.03, "flip_prob": 0.5}
  key = jax.random.key(8)
  inputs, targets = augment.augment_pair(key, x, cfg)
  k_affine, k_warp = jax.random.split(key)
  seq = warp.random_warp(k_warp, warp.random_affine(k_affine, x, 10.0, 0.05, 0.03, 0.5),
                         jitter=0.02)
  inner = (slice(None), slice(12, -12), slice(12, -12))
  diff = np.abs(np.asarray(inputs) - np.asarray(seq))[inner]
  assert diff.mean() < 0.01 * np.abs(np.asarray(inputs) - np.asarray(targets))[inner].mean() + 2e-3


def test_augment_pair_with_landmarks_matches_affine():
  x = _images(2, 32, 32)
  lms = np.random.default_rng(2).uniform(-0.8, 0.8, size=(2, 68, 2)).astype(np.float32)
  cfg = {"warp": True, "rotation_deg": 15.0, "zoom": 0.1, "shift": 0.05, "flip_prob": 0.5}
  key = jax.random.key(3)
  inputs, targets, moved = augment.augment_pair_with_landmarks(key, x, jnp.asarray(lms), cfg)
  inputs2, targets2 = augment.augment_pair(key, x, cfg)
  np.testing.assert_array_equal(np.asarray(inputs), np.asarray(inputs2))
  np.testing.assert_array_equal(np.asarray(targets), np.asarray(targets2))
  k_affine, _ = jax.random.split(key)
  mats = warp.random_affine_matrices(k_affine, 2, 32, 32, 15.0, 0.1, 0.05, 0.5)
  np.testing.assert_allclose(np.asarray(moved),
                             np.asarray(warp.transform_landmarks(mats, lms, 32, 32)), atol=1e-6)


@pytest.mark.parametrize("bad", [{"zoom": -0.1}, {"flip_prob": 1.5}, {"mode": "wrap"},
                                 {"warp_grid_size": 1}, {"rotation": 5.0}])
def test_augment_rejects_bad_config(bad):
  with pytest.raises(UserError):
    augment.augment(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), bad)
