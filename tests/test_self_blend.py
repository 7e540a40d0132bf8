"""Self-blended images: exact outside the mask, changed only inside, deterministic."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.data import synthetic
from deepjax.errors import UserError
from deepjax.ops import self_blend

SIZE = 48


@pytest.fixture(scope="module")
def faces():
  ids = synthetic.stack_identities([synthetic.sample_identity(s) for s in range(4)])
  images, landmarks = synthetic.render(ids, synthetic.sample_motion(3, 4), SIZE)
  return jnp.asarray(images), jnp.asarray(landmarks)


@pytest.fixture(scope="module")
def blended(faces):
  images, landmarks = faces
  out = self_blend.self_blend(jax.random.key(7), images, landmarks)
  return tuple(np.asarray(a) for a in out)


def test_shapes_and_range(faces, blended):
  fake, mask = blended
  assert fake.shape == (4, SIZE, SIZE, 3) and fake.dtype == np.float32
  assert mask.shape == (4, SIZE, SIZE, 1) and mask.dtype == np.float32
  assert fake.min() >= 0 and fake.max() <= 1 and mask.min() >= 0 and mask.max() <= 1


def test_equal_outside_mask_and_changed_inside(faces, blended):
  images = np.asarray(faces[0])
  fake, mask = blended
  for i in range(4):
    outside = mask[i, ..., 0] == 0
    assert outside.mean() > 0.3, "the mask covers the whole crop"
    np.testing.assert_array_equal(fake[i][outside], images[i][outside])
    changed = np.any(fake[i] != images[i], axis=-1)
    assert changed.any() and not np.any(changed & outside)
    # Changes sit where the mask is large: more than half of the change is under mask > 0.2.
    diff = np.abs(fake[i] - images[i]).sum(-1)
    assert diff[mask[i, ..., 0] > 0.2].sum() > 0.5 * diff.sum()


def test_mask_lies_on_the_face(faces, blended):
  _, landmarks = faces
  _, mask = blended
  for i in range(4):
    px = (np.asarray(landmarks[i]) + 1) / 2 * SIZE - 0.5
    cx, cy = px[30]  # nose tip
    m = mask[i, ..., 0]
    assert m[int(round(cy)), int(round(cx))] > 0  # a soft mask of the face covers the nose
    assert (m > 0).mean() < 0.7


def test_deterministic_for_a_key(faces, blended):
  images, landmarks = faces
  again = self_blend.self_blend(jax.random.key(7), images, landmarks)
  np.testing.assert_array_equal(np.asarray(again[0]), blended[0])
  other = self_blend.self_blend(jax.random.key(8), images, landmarks)
  assert not np.array_equal(np.asarray(other[1]), blended[1])


def test_bad_input():
  with pytest.raises(UserError):
    self_blend.read_config({"ratio": 0.5})
  with pytest.raises(UserError):
    self_blend.read_config({"ratios": (0.0, 2.0)})
  with pytest.raises(UserError):
    self_blend.self_blend(jax.random.key(0), jnp.zeros((1, 8, 9, 3)), jnp.zeros((1, 68, 2)))


def test_gaussian_blur_keeps_constants_and_support():
  blur = jax.jit(self_blend.gaussian_blur)
  x = np.zeros((3, 16, 16, 1), np.float32)
  x[:2] = 1.0
  x[2, 8, 8] = 1.0
  out = np.asarray(blur(x, jnp.array([0.5, 3.0, 1.0])))
  np.testing.assert_allclose(out[:2], 1.0, rtol=1e-6)
  out = out[2, ..., 0]
  assert out[8, 8] == out.max() and out[8, 12] == 0 and out[8, 11] > 0  # 3-sigma support
