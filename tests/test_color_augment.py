"""Colour jitter of the encoder input: identity when off, per-image, in range, luma-exact."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.ops.color_augment import color_augment, color_jitter


def _images():
  return jax.random.uniform(jax.random.key(0), (6, 8, 8, 3))


def test_all_zero_is_identity():
  x = _images()
  np.testing.assert_allclose(color_jitter(jax.random.key(1), x), x, atol=1e-5)
  assert color_augment(jax.random.key(1), x, None) is x


def test_grayscale_gives_equal_channels_with_the_same_luma():
  x = _images()
  y = np.asarray(color_jitter(jax.random.key(2), x, grayscale_prob=1.0))
  np.testing.assert_allclose(y[..., 0], y[..., 1], atol=1e-5)
  np.testing.assert_allclose(y[..., 1], y[..., 2], atol=1e-5)
  luma = np.asarray(x) @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(y[..., 0], np.clip(luma, 0, 1), atol=1e-4)


def test_hue_rotation_keeps_luma_and_differs_per_image():
  x = _images() * 0.2 + 0.4  # stay away from clipping
  y = np.asarray(color_jitter(jax.random.key(3), x, hue=0.3))
  w = np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(y @ w, np.asarray(x) @ w, atol=1e-4)
  deltas = np.abs(y - np.asarray(x)).mean(axis=(1, 2, 3))
  assert deltas.std() > 0 and float(y.min()) >= 0 and float(y.max()) <= 1


def test_config_fields_checked_and_jit():
  x = _images()
  with pytest.raises(UserError, match="unknown colour"):
    color_augment(jax.random.key(0), x, {"hue": 0.1, "bogus": 1.0})
  f = jax.jit(lambda k, v: color_augment(k, v, {"hue": 1.0, "brightness": 0.2}))
  assert f(jax.random.key(0), x).shape == x.shape
  assert not jnp.allclose(f(jax.random.key(0), x), f(jax.random.key(1), x))
