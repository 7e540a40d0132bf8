"""deepjax.ops.detect_augment: off is the identity, masks follow the geometry only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.ops import detect_augment as da

ALL = dict(rotation_deg=10.0, zoom=0.1, shift=0.05, hue=0.05, saturation=0.2, brightness=0.1,
           contrast=0.1, quality_prob=1.0, blur_max=1.5, down_min=0.5, noise=0.02)


def _images(n=8, size=32):
  return jax.random.uniform(jax.random.key(0), (n, size, size, 3))


def test_off_is_identity():
  x, m = _images(), jnp.ones((8, 32, 32, 1))
  y, n = da.detect_augment(jax.random.key(1), x, m, da.read_config({}))
  assert y is x and n is m


def test_masks_follow_the_images_geometry_and_nothing_else():
  mask = (jax.random.uniform(jax.random.key(2), (8, 32, 32, 1)) > 0.5).astype(jnp.float32)
  x = jnp.repeat(mask, 3, axis=-1)
  geometry = da.read_config(dict(rotation_deg=10.0, zoom=0.1, shift=0.05))
  y, m = jax.jit(da.detect_augment, static_argnums=3)(jax.random.key(3), x, mask, geometry)
  np.testing.assert_allclose(y[..., :1], m, atol=1e-6)
  assert float(jnp.abs(m - mask).mean()) > 0.05  # it moved
  y, m = jax.jit(da.detect_augment, static_argnums=3)(jax.random.key(3), x, mask,
                                                      da.read_config(ALL))
  assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
  np.testing.assert_allclose(jax.jit(da.detect_augment, static_argnums=3)(
      jax.random.key(3), x, mask, geometry)[1], m, atol=1e-6)  # colour etc. leave masks


def test_quality_loss_blurs_or_resizes_every_image_and_keeps_flat_ones():
  c = dict(da.read_config(dict(quality_prob=1.0)))
  x = _images()
  y = da._quality(jax.random.key(4), x, c)  # pylint: disable=protected-access
  detail = lambda a: jnp.abs(jnp.diff(a, axis=2)).mean(axis=(1, 2, 3))  # noqa: E731
  assert bool(jnp.all(detail(y) < 0.9 * detail(x)))
  flat = jnp.full((8, 32, 32, 3), 0.4)
  np.testing.assert_allclose(da._quality(jax.random.key(4), flat, c), flat, atol=1e-5)  # pylint: disable=protected-access


@pytest.mark.parametrize("bad", [dict(zoom=1.0), dict(quality_prob=2.0), dict(noise=-1.0),
                                 dict(down_min=0.0), dict(rotate=3.0), dict(hue="x")])
def test_bad_config_is_a_user_error(bad):
  with pytest.raises(UserError):
    da.read_config(bad)


@pytest.mark.parametrize("reader", ["augment", "self_blend", "detect_augment"])
def test_op_configs_read_alike(reader):
  """The three op configs share deepjax.configs_lib.read_fields: one-line errors that name
  the field, defaults filled in, numbers as floats."""
  from deepjax.ops import augment, self_blend  # pylint: disable=import-outside-toplevel
  read, number = {"augment": (augment._read_cfg, "zoom"),  # pylint: disable=protected-access
                  "self_blend": (self_blend.read_config, "hue"),
                  "detect_augment": (da.read_config, "hue")}[reader]
  assert dict(read({number: 0})).get(number) == 0.0 and isinstance(dict(read(None))[number], float)
  for bad, words in (({"nope": 1}, "nope"), ({number: "x"}, number), ({number: -1}, ">= 0"),
                     ([1, 2], "dict")):
    with pytest.raises(UserError, match=words):
      read(bad)
