"""Swap-model blocks: pixel shuffle, the explicit input-gradient conv, model shapes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.models import blocks
from deepjax.models.swap import SwapModel


def test_pixel_shuffle_matches_torch_order():
  # torch.nn.PixelShuffle: out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]
  r, c, h, w = 2, 3, 2, 2
  x = np.arange(1 * h * w * c * r * r, dtype=np.float32).reshape(1, h, w, c * r * r)
  y = np.asarray(blocks.pixel_shuffle(jnp.asarray(x), r))
  for ch in range(c):
    for i in range(r):
      for j in range(r):
        np.testing.assert_array_equal(y[0, i::r, j::r, ch], x[0, :, :, ch * r * r + i * r + j])


@pytest.mark.parametrize("size,k,stride,cin,cout", [(8, 5, 2, 4, 6), (7, 5, 2, 3, 5),
                                                    (16, 3, 2, 2, 3), (6, 5, 1, 2, 2)])
def test_explicit_dx_matches_xla_gradient(size, k, stride, cin, cout):
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, size, size, cin))
  w = jax.random.normal(kw, (k, k, cin, cout))

  def f(explicit):
    return lambda x_, w_: blocks.strided_conv(x_, w_, stride, explicit_dx=explicit)

  y_ref, vjp_ref = jax.vjp(f(False), x, w)
  y_new, vjp_new = jax.vjp(f(True), x, w)
  g = jax.random.normal(kg, y_ref.shape)
  np.testing.assert_allclose(y_new, y_ref, atol=1e-5)
  for a, b in zip(vjp_new(g), vjp_ref(g)):
    np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs,n_params", [
    (dict(arch="seeds", encoder_features=(16, 8, 8), decoder_features=(8, 8, 16)), None),
    (dict(encoder_features=(32, 64, 128, 256), latent_dim=64, upscale_features=64,
          decoder_features=(32, 16, 8), mask=True, variational=True), None),
])
def test_swap_model_shapes(kwargs, n_params):
  m = SwapModel(**kwargs)
  x = jnp.zeros((2, 64, 64, 3))
  params = m.init(jax.random.key(0), x, method=m.init_all)
  assert set(params["params"]) >= {"encoder", "decoder_a", "decoder_b"}
  rgb, mask, stats = m.apply(params, x, "b", jax.random.key(1))
  assert rgb.shape == (2, 64, 64, 3)
  assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1
  if kwargs.get("mask"):
    assert mask.shape == (2, 64, 64, 1)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
  if kwargs.get("variational"):
    assert stats[0].shape == stats[1].shape


def test_seeds_model_is_the_keras_model():
  m = SwapModel(arch="seeds", encoder_features=(16, 8, 8), decoder_features=(8, 8, 16))
  params = m.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), method=m.init_all)
  z, _ = m.apply(params, jnp.zeros((1, 64, 64, 3)), method=m.encode)
  assert z.shape == (1, 8, 8, 8)
  # Keras: encoder 448+1160+584, decoder 584+584+1168+435 per decoder.
  n = sum(p.size for p in jax.tree.leaves(params))
  assert n == (448 + 1160 + 584) + 2 * (584 + 584 + 1168 + 435)


def test_original_model_layout():
  m = SwapModel()  # faceswap "Original" at 64 px
  shapes = jax.eval_shape(lambda: m.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                                         method=m.init_all))
  enc = shapes["params"]["encoder"]
  kernels = [enc[f"DownBlock_{i}"]["StridedConv_0"]["kernel"].shape for i in range(4)]
  assert kernels == [(5, 5, 3, 128), (5, 5, 128, 256), (5, 5, 256, 512), (5, 5, 512, 1024)]
  assert enc["bottleneck"]["kernel"].shape == (4 * 4 * 1024, 1024)
  assert enc["expand"]["kernel"].shape == (1024, 4 * 4 * 1024)


