"""First-order motion modules: equality with the reference PyTorch code, shapes, invariants."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.convert.fomm import variables_from_torch
from deepjax.errors import UserError
from deepjax.models import hourglass as hg
from deepjax.models.motion.fomm import FOMM, generator_losses
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
  template = fomm.init_shapes((2, 32, 32, 3))
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
  detect = jax.jit(lambda v, x: fomm.apply_kp_detector(v, x, train)[0])
  kp_s, kp_d = detect(variables, source), detect(variables, driving)
  for which, kp in (("source", kp_s), ("driving", kp_d)):
    for f in ("value", "jacobian"):
      np.testing.assert_allclose(np.asarray(kp[f]), ref[f"{mode}/kp_{which}_{f}"], atol=2e-5,
                                 rtol=1e-4, err_msg=f"{which} {f}")
  # Feed the reference's keypoints so the generator is compared on its own.
  generate = jax.jit(lambda v, x, ks, kd: fomm.apply_generator(v, x, ks, kd, train)[0])
  out = generate(variables, source, _kp(ref, mode, "source"), _kp(ref, mode, "driving"))
  # Invariants: the motion weights are a softmax, the occlusion a sigmoid.
  np.testing.assert_allclose(np.asarray(out["mask"]).sum(-1), 1.0, atol=1e-5)
  occ = np.asarray(out["occlusion_map"])
  assert occ.min() >= 0.0 and occ.max() <= 1.0
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


def _load_config(name, arg=None):
  import importlib.util  # pylint: disable=import-outside-toplevel
  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", name + ".py")
  spec = importlib.util.spec_from_file_location("cfg_" + name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _shapes(tree):
  return jax.tree.map(lambda x: tuple(x.shape), tree)


def _output_shapes(config, batch=2):
  fomm = FOMM.from_config(config.model)
  size = config.data.size
  image = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  variables = fomm.init_shapes(image.shape)
  gen = jax.eval_shape(lambda v, s, d: fomm.full_forward(v, s, d, train=True)[0], variables,
                       image, image)
  return fomm, variables, _shapes(gen)


def test_tiny_config_output_shapes():
  config = _load_config("fomm_vox256", "tiny")
  _, variables, gen = _output_shapes(config)
  k = config.model.num_kp
  assert gen["kp_source"] == {"value": (2, k, 2), "jacobian": (2, k, 2, 2)}
  assert gen["prediction"] == (2, 64, 64, 3) and gen["deformed"] == (2, 64, 64, 3)
  assert gen["mask"] == (2, 32, 32, k + 1) and gen["occlusion_map"] == (2, 32, 32, 1)
  assert gen["sparse_deformed"] == (2, k + 1, 32, 32, 3) and gen["deformation"] == (2, 32, 32, 2)
  kp_params = variables["kp_detector"]["params"]
  # 7x7 heads on the hourglass output (block_expansion + 3 channels), no padding.
  assert kp_params["kp"]["kernel"].shape == (7, 7, 16 + 3, k)
  assert kp_params["jacobian"]["kernel"].shape == (7, 7, 16 + 3, 4 * k)


def test_vox256_parameter_shapes_match_reference_layout():
  config = _load_config("fomm_vox256")
  _, variables, gen = _output_shapes(config, batch=1)
  assert gen["prediction"] == (1, 256, 256, 3) and gen["mask"] == (1, 64, 64, 11)
  p = variables["generator"]["params"]
  # Shapes of the published vox-cpk checkpoint's tensors, transposed to HWIO.
  assert p["first"]["conv"]["kernel"].shape == (7, 7, 3, 64)
  assert p["down_blocks_1"]["conv"]["kernel"].shape == (3, 3, 128, 256)
  assert p["bottleneck"]["r5"]["conv2"]["kernel"].shape == (3, 3, 256, 256)
  assert p["up_blocks_0"]["conv"]["kernel"].shape == (3, 3, 256, 128)
  assert p["final"]["kernel"].shape == (7, 7, 64, 3)
  dm = p["dense_motion_network"]
  assert dm["hourglass"]["encoder"]["down_blocks_0"]["conv"]["kernel"].shape == (3, 3, 44, 128)
  assert dm["hourglass"]["decoder"]["up_blocks_0"]["conv"]["kernel"].shape == (3, 3, 1024, 1024)
  assert dm["mask"]["kernel"].shape == (7, 7, 108, 11)
  assert dm["occlusion"]["kernel"].shape == (7, 7, 108, 1)
  kp = variables["kp_detector"]["params"]
  assert kp["predictor"]["encoder"]["down_blocks_4"]["conv"]["kernel"].shape == (3, 3, 512, 1024)
  assert kp["kp"]["kernel"].shape == (7, 7, 35, 10)
  assert kp["jacobian"]["kernel"].shape == (7, 7, 35, 40)
  n_gen = sum(np.prod(x.shape) for x in jax.tree.leaves(p))
  n_kp = sum(np.prod(x.shape) for x in jax.tree.leaves(kp))
  # Trainable parameter counts of the reference PyTorch modules built with vox-256.yaml
  # (sum of p.numel() over KPDetector / OcclusionAwareGenerator .parameters()).
  assert (n_gen, n_kp) == (45_575_391, 14_215_368)


SMALL_KP = dict(block_expansion=4, num_kp=3, num_channels=3, max_features=8, num_blocks=2,
                temperature=0.1, estimate_jacobian=True, scale_factor=1.0)


def test_jacobian_head_initialised_to_identity():
  det = KeypointDetector(**SMALL_KP)
  image = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))

  @jax.jit
  def init_and_detect(key, image):
    variables = det.init(key, image)
    return variables, det.apply(variables, image)

  variables, kp = init_and_detect(jax.random.key(2), image)
  head = variables["params"]["jacobian"]
  np.testing.assert_array_equal(np.asarray(head["kernel"]), 0.0)
  np.testing.assert_array_equal(np.asarray(head["bias"]), np.tile([1.0, 0, 0, 1], 3))
  np.testing.assert_allclose(np.asarray(kp["jacobian"]), np.broadcast_to(np.eye(2), (2, 3, 2, 2)),
                             atol=1e-5)
  assert np.all(np.abs(np.asarray(kp["value"])) <= 1.0)


@pytest.mark.slow
def test_generator_losses_tiny(ref, fixture_model):
  fomm, variables = fixture_model
  source, driving = jnp.asarray(ref["source"]), jnp.asarray(ref["driving"])
  weights = dict(perceptual=(10.0,) * 5, equivariance_value=10.0, equivariance_jacobian=10.0,
                 generator_gan=0.0)
  transform = dict(sigma_affine=0.05, sigma_tps=0.005, points_tps=5)

  @jax.jit
  def loss_and_grad(v, key):
    def f(params):
      v2 = jax.tree.map(lambda x: x, v)
      v2["kp_detector"] = dict(v["kp_detector"], params=params["kp"])
      v2["generator"] = dict(v["generator"], params=params["gen"])
      total, (losses, _, new_v) = generator_losses(fomm, v2, source, driving, key, weights,
                                                   transform, (1.0, 0.5), None, True)
      return total, (losses, new_v)
    params = {"kp": v["kp_detector"]["params"], "gen": v["generator"]["params"]}
    return jax.value_and_grad(f, has_aux=True)(params)

  (total, (losses, new_v)), grads = loss_and_grad(variables, jax.random.key(0))
  assert set(losses) == {"perceptual", "equivariance_value", "equivariance_jacobian"}
  assert np.isfinite(float(total)) and float(total) > 0
  np.testing.assert_allclose(float(total), sum(float(x) for x in losses.values()), rtol=1e-5)
  gnorm = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(gnorm)) and max(gnorm) > 0
  # The detector ran three times (source, driving, transformed): its statistics moved.
  old = variables["kp_detector"]["batch_stats"]["predictor"]["encoder"]["down_blocks_0"]["norm"]
  new = new_v["kp_detector"]["batch_stats"]["predictor"]["encoder"]["down_blocks_0"]["norm"]
  assert not np.allclose(np.asarray(old["mean"]), np.asarray(new["mean"]))


def test_batched_detector_calls_equal_separate_calls(ref, fixture_model):
  """The training step's three detector calls (source, driving, transformed driving) run as
  one batched call with per-call BatchNorm statistics: keypoints, gradients and running
  statistics equal three calls in order."""
  fomm, variables = fixture_model
  images = [jnp.asarray(ref["source"]), jnp.asarray(ref["driving"]),
            jnp.asarray(ref["driving"])[:, ::-1]]

  def loss(params, many):
    v = dict(variables, kp_detector=dict(variables["kp_detector"], params=params))
    if many:
      kps, new = fomm.apply_kp_detector_many(v, images, True)
    else:
      kps = []
      for image in images:
        kp, kp_vars = fomm.apply_kp_detector(v, image, True)
        v = dict(v, kp_detector=kp_vars)
        kps.append(kp)
      new = v["kp_detector"]
    total = sum(jnp.sum(jnp.sin((i + 1.0) * kp["value"])) + jnp.sum(jnp.cos(kp["jacobian"]))
                for i, kp in enumerate(kps))
    return total, (kps, new["batch_stats"])

  params = variables["kp_detector"]["params"]
  (_, aux_got), grad_got = jax.jit(jax.value_and_grad(lambda p: loss(p, True), has_aux=True))(
      params)
  (_, aux_want), grad_want = jax.jit(jax.value_and_grad(lambda p: loss(p, False),
                                                        has_aux=True))(params)
  for a, e in zip(jax.tree.leaves(aux_got), jax.tree.leaves(aux_want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=2e-4, atol=2e-5)
  # Gradients: relative to the largest one (conv biases feeding a BatchNorm have a true
  # gradient of zero and only float noise of ~1e-5).
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grad_want))
  for a, e in zip(jax.tree.leaves(grad_got), jax.tree.leaves(grad_want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-3, atol=1e-4 * scale)
  # Eval mode: per-sample, so batching is trivially the same.
  kps, _ = fomm.apply_kp_detector_many(variables, images, False)
  np.testing.assert_allclose(kps[2]["value"], fomm.detect(variables, images[2])["value"],
                             atol=1e-5)


# ---- VGG19 (deepjax.models.vgg) ----------------------------------------------------------

from deepjax.models import vgg  # noqa: E402


def _random_torch_vgg(seed=0):
  rng = np.random.default_rng(seed)
  return {name: (0.1 * rng.standard_normal(shape)).astype(np.float32)
          for name, shape in vgg.vgg19_param_shapes().items()}


def test_vgg19_load_and_first_layer_vs_numpy(tmp_path):
  state = _random_torch_vgg()
  path = str(tmp_path / "vgg19.npz")
  np.savez(path, **{k[len("features."):]: v for k, v in state.items()})  # prefix optional
  params = vgg.load_vgg19_params(path)
  image = np.random.default_rng(1).random((1, 16, 16, 3)).astype(np.float32)
  feats = jax.jit(vgg.vgg19_features)(params, jnp.asarray(image))
  assert [f.shape for f in feats] == [(1, 16, 16, 64), (1, 8, 8, 128), (1, 4, 4, 256),
                                      (1, 2, 2, 512), (1, 1, 1, 512)]
  # relu1_1 by hand: ImageNet normalisation, 3x3 cross-correlation (padding 1) in OIHW.
  x = (image[0] - np.array(vgg.IMAGENET_MEAN)) / np.array(vgg.IMAGENET_STD)
  xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
  w, b = state["features.0.weight"], state["features.0.bias"]
  expected = np.zeros((16, 16, 64))
  for dy in range(3):
    for dx in range(3):
      expected += np.einsum("hwi,oi->hwo", xp[dy:dy + 16, dx:dx + 16], w[:, :, dy, dx])
  expected = np.maximum(expected + b, 0)
  np.testing.assert_allclose(np.asarray(feats[0][0]), expected, atol=1e-4)


def test_vgg19_load_errors(tmp_path):
  with pytest.raises(UserError, match="not found"):
    vgg.load_vgg19_params(str(tmp_path / "nope.npz"))
  state = _random_torch_vgg()
  del state["features.28.bias"]
  np.savez(str(tmp_path / "a.npz"), **state)
  with pytest.raises(UserError, match="features.28.bias"):
    vgg.load_vgg19_params(str(tmp_path / "a.npz"))
  state = _random_torch_vgg()
  state["features.5.weight"] = state["features.5.weight"].transpose(2, 3, 1, 0)
  np.savez(str(tmp_path / "b.npz"), **state)
  with pytest.raises(UserError, match="features.5.weight"):
    vgg.load_vgg19_params(str(tmp_path / "b.npz"))


def test_perceptual_loss_zero_for_equal_and_fallback_value():
  from deepjax.models.motion.fomm import perceptual_pyramid_loss  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(2)
  a = jnp.asarray(rng.random((1, 16, 16, 3)), jnp.float32)
  b = jnp.asarray(rng.random((1, 16, 16, 3)), jnp.float32)
  params = vgg.random_vgg19_params(jax.random.key(0))
  loss = jax.jit(perceptual_pyramid_loss, static_argnums=(3,))
  assert float(loss(params, a, a, (1.0,))) == 0.0
  assert float(loss(params, a, b, (1.0,))) > 0.0
  # Fallback: mean weight (10) x mean |a - b| at scale 1 (no blur there) + at scale 0.5.
  expected = 10 * np.abs(np.asarray(a) - np.asarray(b)).mean() + 10 * np.abs(
      np.asarray(hg.anti_alias_interpolate(a, 0.5)) - np.asarray(hg.anti_alias_interpolate(b, 0.5))
  ).mean()
  np.testing.assert_allclose(float(loss(None, a, b, (1.0, 0.5))), expected, rtol=1e-5)


# ---- Discriminator -----------------------------------------------------------------------

from deepjax.models.motion.discriminator import MultiScaleDiscriminator, scale_key  # noqa: E402


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_discriminator_matches_reference_pytorch(ref, mode):
  disc = MultiScaleDiscriminator(scales=(1.0, 0.5), block_expansion=4, max_features=16,
                                 num_blocks=2, sn=True, use_kp=True, num_kp=3)
  driving = jnp.asarray(ref["driving"])
  pyramid = {1.0: driving, 0.5: hg.anti_alias_interpolate(driving, 0.5)}
  kp = jnp.asarray(ref["disc/kp"])
  template = jax.eval_shape(lambda: disc.init(jax.random.key(0), pyramid, kp))
  state = {k[len("discriminator."):]: v for k, v in ref.items() if k.startswith("discriminator.")}
  variables = variables_from_torch(state, template, "discriminator")
  train = mode == "train"
  out, _ = jax.jit(lambda v: disc.apply(v, pyramid, kp, train, mutable=["batch_stats"]))(variables)
  for s, name in ((1.0, "1"), (0.5, "0.5")):
    feats, pred = out[s]
    # Values reach ~30 after spectral normalisation: float32 sums differ at ~1e-4 relative.
    np.testing.assert_allclose(np.asarray(pred), ref[f"disc/{mode}/prediction_map_{name}"],
                               atol=2e-4, rtol=5e-4)
    for i, f in enumerate(feats):
      np.testing.assert_allclose(np.asarray(f), ref[f"disc/{mode}/feature_map_{name}_{i}"],
                                 atol=2e-4, rtol=5e-4)
  assert scale_key(1.0) == "1" and scale_key(0.25) == "0-25"


def test_animate_encodes_source_once_with_same_result(ref, fixture_model):
  fomm, variables = fixture_model
  source = jnp.asarray(ref["source"][:1])
  kp_s = jax.tree.map(lambda x: x[:1], _kp(ref, "eval", "source"))
  kp_d = _kp(ref, "eval", "driving")
  fast = jax.jit(fomm.animate)(variables, source, kp_s, kp_d)["prediction"]
  plain = jax.jit(lambda v, s, ks, kd: fomm.apply_generator(v, s, ks, kd)[0]["prediction"])(
      variables, jnp.broadcast_to(source, (2, 32, 32, 3)),
      jax.tree.map(lambda x: jnp.broadcast_to(x, (2,) + x.shape[1:]), kp_s), kp_d)
  np.testing.assert_allclose(np.asarray(fast), np.asarray(plain), atol=1e-6)


def test_vgg_max_pool_matches_reduce_window():
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
  expected = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  np.testing.assert_array_equal(np.asarray(vgg._max_pool2(x)), np.asarray(expected))  # pylint: disable=protected-access


def test_discriminator_from_config_shapes_and_small_pyramid_error():
  from deepjax.models.motion.discriminator import build_discriminator  # pylint: disable=import-outside-toplevel
  from deepjax.models.motion.fomm import perceptual_pyramid_loss  # pylint: disable=import-outside-toplevel
  config = _load_config("fomm_vox256")
  disc = build_discriminator(config.model)
  pyramid = {1.0: jax.ShapeDtypeStruct((2, 256, 256, 3), jnp.float32)}
  variables = jax.eval_shape(lambda p: disc.init(jax.random.key(0), p), pyramid)
  out = jax.eval_shape(lambda v, p: disc.apply(v, p), variables, pyramid)
  feats, pred = out[1.0]
  # 4x4 VALID convs, pooling after all but the last block: 253 -> 126 -> 61 -> 29 -> 26.
  assert [f.shape for f in feats] == [(2, 126, 126, 64), (2, 61, 61, 128), (2, 29, 29, 256),
                                      (2, 26, 26, 512)]
  assert pred.shape == (2, 26, 26, 1)
  assert "u" in variables["batch_stats"]["discs_1"]["down_blocks_0"]["conv"]
  x = jnp.zeros((1, 64, 64, 3))
  with pytest.raises(ValueError, match="16 px"):
    perceptual_pyramid_loss(vgg.random_vgg19_params(jax.random.key(0)), x, x,
                            (1.0, 0.5, 0.25, 0.125))
