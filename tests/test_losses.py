"""Tests for deepjax.losses against numpy/scipy references and hand-worked values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, spatial, stats

from deepjax import losses
from deepjax.errors import UserError


# ----------------------------------------------------------------------------
# Independent SSIM reference: scipy.ndimage.gaussian_filter (sigma 1.5, truncate
# 3.5 -> 11 taps), population statistics, crop of the (11 - 1) / 2 border.
# ----------------------------------------------------------------------------
def _ssim_map_ref(x, y, max_val=1.0, k1=0.01, k2=0.03, crop=True):
  x = x.astype(np.float64)
  y = y.astype(np.float64)
  def filt(a):
    return ndimage.gaussian_filter(a, sigma=(0, 1.5, 1.5, 0), truncate=3.5, mode="reflect")
  mx, my = filt(x), filt(y)
  vx = filt(x * x) - mx * mx
  vy = filt(y * y) - my * my
  cxy = filt(x * y) - mx * my
  c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
  smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
  return smap[:, 5:-5, 5:-5] if crop else smap


def _structured_pair(b, h, w, rng):
  ys, xs = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
  base = np.stack([np.sin(6 * xs) * 0.5 + 0.5, ys, (xs * ys)], -1)
  x = np.broadcast_to(base, (b, h, w, 3)).copy()
  x[:, h // 3:h // 2, w // 4:w // 2] = 0.9  # a sharp-edged patch
  y = np.clip(x + rng.normal(scale=0.05, size=x.shape), 0, 1)
  y = np.roll(y, 1, axis=2)
  return x.astype(np.float32), y.astype(np.float32)


def test_ssim_matches_scipy_reference_random():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(3, 24, 28, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(scale=0.2, size=x.shape), 0, 1).astype(np.float32)
  want = _ssim_map_ref(x, y).mean(axis=(1, 2, 3))
  got = np.asarray(jax.jit(losses.ssim)(x, y))
  assert got.shape == (3,)
  np.testing.assert_allclose(got, want, atol=1e-4)
  # Independent random images too (SSIM near 0).
  z = rng.uniform(size=x.shape).astype(np.float32)
  np.testing.assert_allclose(np.asarray(losses.ssim(x, z)),
                             _ssim_map_ref(x, z).mean(axis=(1, 2, 3)), atol=1e-4)


def test_ssim_matches_scipy_reference_structured_and_range():
  rng = np.random.default_rng(1)
  x, y = _structured_pair(2, 32, 30, rng)
  np.testing.assert_allclose(np.asarray(losses.ssim(x, y)),
                             _ssim_map_ref(x, y).mean(axis=(1, 2, 3)), atol=1e-4)
  # 8-bit range.
  np.testing.assert_allclose(np.asarray(losses.ssim(255 * x, 255 * y, max_val=255.0)),
                             _ssim_map_ref(255 * x, 255 * y, 255.0).mean(axis=(1, 2, 3)),
                             atol=1e-4)
  # Map, both paddings.
  np.testing.assert_allclose(np.asarray(losses.ssim_map(x, y)), _ssim_map_ref(x, y), atol=1e-4)
  same = np.asarray(losses.ssim_map(x, y, padding="SAME"))
  assert same.shape == x.shape
  np.testing.assert_allclose(same, _ssim_map_ref(x, y, crop=False), atol=1e-4)


def test_ssim_identity_symmetry_and_dssim():
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)
  y = rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(losses.ssim(x, x)), 1.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(losses.ssim(x, y)), np.asarray(losses.ssim(y, x)),
                             atol=1e-6)
  s = np.asarray(losses.ssim(x, y))
  np.testing.assert_allclose(float(losses.dssim(x, y)), np.mean((1 - s) / 2), atol=1e-6)
  assert float(losses.dssim(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_ssim_rejects_small_images():
  with pytest.raises(UserError):
    losses.ssim(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 3)))


def test_gaussian_kernel_matches_scipy():
  impulse = np.zeros(21)
  impulse[10] = 1.0
  want = ndimage.gaussian_filter1d(impulse, 1.5, truncate=3.5)[5:16]
  np.testing.assert_allclose(losses.gaussian_kernel_1d(11, 1.5), want, atol=1e-7)


# ----------------------------------------------------------------------------
# Pixel losses
# ----------------------------------------------------------------------------
def test_psnr_matches_numpy():
  rng = np.random.default_rng(3)
  x = rng.uniform(size=(4, 8, 8, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1).astype(np.float32)
  want = 10 * np.log10(1.0 / np.mean((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(np.asarray(jax.jit(losses.psnr)(x, y)), want, rtol=1e-5)
  want255 = 10 * np.log10(255.0**2 / np.mean((255.0 * x - 255.0 * y) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(np.asarray(losses.psnr(255 * x, 255 * y, 255.0)), want255,
                             rtol=1e-4)


@pytest.mark.parametrize("name,fn", [("mse", lambda d: d * d), ("l1", np.abs)])
def test_weighted_pixel_losses_match_numpy(name, fn):
  rng = np.random.default_rng(4)
  x = rng.uniform(size=(2, 6, 5, 3)).astype(np.float32)
  y = rng.uniform(size=(2, 6, 5, 3)).astype(np.float32)
  w = rng.uniform(0, 3, size=(2, 6, 5, 1)).astype(np.float32)
  loss = getattr(losses, name)
  d = fn(x.astype(np.float64) - y)
  assert float(loss(x, y)) == pytest.approx(d.mean(), rel=1e-5)
  wf = np.broadcast_to(w, x.shape)
  assert float(jax.jit(loss)(x, y, w)) == pytest.approx((wf * d).sum() / wf.sum(), rel=1e-5)
  # All-ones weights give the plain mean; zero weight ignores a region.
  assert float(loss(x, y, np.ones_like(w))) == pytest.approx(d.mean(), rel=1e-5)
  mask = np.zeros_like(w)
  mask[:, :3] = 1.0
  assert float(loss(x, y, mask)) == pytest.approx(d[:, :3].mean(), rel=1e-5)


def test_total_variation_hand_worked():
  x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32).reshape(1, 2, 2, 1)
  # vertical |2-0|, |3-1| -> mean 2; horizontal |1-0|, |3-2| -> mean 1.
  assert float(losses.total_variation(x)) == pytest.approx(3.0)
  assert float(losses.total_variation(np.ones((2, 5, 5, 3), np.float32))) == 0.0


# ----------------------------------------------------------------------------
# KL and GAN losses
# ----------------------------------------------------------------------------
def test_kl_divergence_closed_form_and_monte_carlo():
  rng = np.random.default_rng(5)
  mean = rng.normal(size=(3, 4)).astype(np.float32)
  logvar = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
  got = np.asarray(jax.jit(losses.kl_divergence)(mean, logvar))
  assert got.shape == (3,)
  sd = np.exp(0.5 * logvar.astype(np.float64))
  # KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2, per dimension.
  want = np.sum(-np.log(sd) + (sd**2 + mean**2) / 2 - 0.5, axis=1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Monte-Carlo estimate of E_q[log q(z) - log p(z)].
  n = 200_000
  z = mean[None] + sd[None] * rng.normal(size=(n, 3, 4))
  log_ratio = (stats.norm.logpdf(z, mean[None], sd[None]) - stats.norm.logpdf(z)).sum(-1)
  mc = log_ratio.mean(0)
  stderr = log_ratio.std(0) / np.sqrt(n)
  assert np.all(np.abs(mc - got) < 5 * stderr + 1e-3)
  # Standard normal posterior has zero KL; spatial latents sum over all non-batch axes.
  assert np.allclose(losses.kl_divergence(jnp.zeros((2, 3, 3, 4)), jnp.zeros((2, 3, 3, 4))), 0)


def test_gan_losses_known_values():
  ones, zeros = jnp.ones((2, 4, 4, 1)), jnp.zeros((2, 4, 4, 1))
  assert float(losses.lsgan_d_loss(ones, zeros)) == pytest.approx(0.0)
  assert float(losses.lsgan_d_loss(zeros, ones)) == pytest.approx(2.0)
  assert float(losses.lsgan_d_loss(0.5 * ones, 0.5 * ones)) == pytest.approx(0.5)
  assert float(losses.lsgan_g_loss(ones)) == pytest.approx(0.0)
  assert float(losses.lsgan_g_loss(zeros)) == pytest.approx(1.0)
  assert float(losses.hinge_d_loss(2 * ones, -2 * ones)) == pytest.approx(0.0)
  assert float(losses.hinge_d_loss(zeros, zeros)) == pytest.approx(2.0)
  assert float(losses.hinge_d_loss(0.5 * ones, -0.5 * ones)) == pytest.approx(1.0)
  assert float(losses.hinge_g_loss(3 * ones)) == pytest.approx(-3.0)
  real = jnp.asarray([0.0, 2.0])  # hinge: relu(1-0)=1, relu(1-2)=0 -> 0.5
  fake = jnp.asarray([-1.0, 1.0])  # relu(0)=0, relu(2)=2 -> 1.0
  assert float(losses.hinge_d_loss(real, fake)) == pytest.approx(1.5)
  # lsgan: ((0-1)^2 + (2-1)^2)/2 = 1; (1 + 1)/2 = 1.
  assert float(losses.lsgan_d_loss(real, fake)) == pytest.approx(2.0)
  # Multi-scale lists sum the per-scale losses.
  assert float(losses.lsgan_g_loss([zeros, jnp.zeros((2, 2, 2, 1))])) == pytest.approx(2.0)
  assert float(losses.hinge_d_loss([real, real], [fake, fake])) == pytest.approx(3.0)


# ----------------------------------------------------------------------------
# Landmark weight map
# ----------------------------------------------------------------------------
def _face_landmarks(b, rng):
  """Rough 68-point faces: elliptic eyes and mouth, jaw/brows/nose elsewhere."""
  lms = np.zeros((b, 68, 2))
  for i in range(b):
    c = rng.uniform(-0.05, 0.05, size=2)
    t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for start, ex in ((36, -0.35), (42, 0.35)):
      lms[i, start:start + 6] = c + [ex, -0.2] + np.stack([0.12 * np.cos(t), 0.05 * np.sin(t)], -1)
    tm = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lms[i, 48:68] = c + [0.0, 0.45] + np.stack([0.25 * np.cos(tm), 0.1 * np.sin(tm)], -1)
    tj = np.linspace(np.pi, 0, 17)
    lms[i, 0:17] = c + np.stack([0.85 * np.cos(tj), 0.85 * np.sin(tj)], -1)
    lms[i, 17:27] = c + np.stack([np.linspace(-0.5, 0.5, 10), np.full(10, -0.4)], -1)
    lms[i, 27:36] = c + np.stack([np.zeros(9), np.linspace(-0.15, 0.2, 9)], -1)
  return lms.astype(np.float32)


def _pixel(u, size):
  """Landmark units -> (row, col) of the pixel containing the point."""
  p = (np.asarray(u) + 1) / 2 * size - 0.5
  return int(round(p[1])), int(round(p[0]))


def test_landmark_weight_map_weights_at_centroids_and_far_away():
  size = 64
  lms = _face_landmarks(2, np.random.default_rng(6))
  fn = jax.jit(lambda l: losses.landmark_weight_map(l, size, eye_weight=3.0, mouth_weight=2.0))
  wmap = np.asarray(fn(lms))
  assert wmap.shape == (2, size, size, 1)
  for i in range(2):
    for idx in (range(36, 42), range(42, 48)):
      r, c = _pixel(lms[i, list(idx)].mean(0), size)
      assert wmap[i, r, c, 0] == pytest.approx(3.0, abs=1e-3)
    r, c = _pixel(lms[i, 48:68].mean(0), size)
    assert wmap[i, r, c, 0] == pytest.approx(2.0, abs=1e-3)
    for corner in ((0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)):
      assert wmap[i, corner[0], corner[1], 0] == pytest.approx(1.0, abs=1e-3)
    # The forehead centre, between the brows and far above the eyes.
    r, c = _pixel(lms[i, 27] + [0, -0.6], size)
    assert wmap[i, r, c, 0] == pytest.approx(1.0, abs=1e-3)
  assert np.all(wmap >= 1.0 - 1e-6) and np.all(wmap <= 3.0 + 1e-5)


def test_landmark_weight_map_hard_hull_matches_scipy_delaunay():
  # Random (unordered) point sets: the mouth region must be their convex hull.
  size = 48
  rng = np.random.default_rng(7)
  lms = _face_landmarks(3, rng)
  lms[:, 48:68] = rng.uniform(-0.6, 0.6, size=(3, 20, 2)) * [1.0, 0.5] + [0.0, 0.4]
  lms[:, 36:48] = 5.0  # eyes off-image so only the mouth counts
  wmap = np.asarray(losses.landmark_weight_map(jnp.asarray(lms), size, 3.0, 2.0,
                                               dilate=0.0, softness=0.0))[..., 0]
  centres = (np.arange(size) + 0.5) / size * 2 - 1
  gy, gx = np.meshgrid(centres, centres, indexing="ij")
  pix = np.stack([gx.ravel(), gy.ravel()], -1)
  for i in range(3):
    inside = spatial.Delaunay(lms[i, 48:68].astype(np.float64)).find_simplex(pix) >= 0
    got = wmap[i].ravel() == 2.0
    hull = spatial.ConvexHull(lms[i, 48:68].astype(np.float64))
    # Distance to the hull boundary (max over facet planes, |.| small = on the edge).
    plane = pix @ hull.equations[:, :2].T + hull.equations[:, 2]
    near_edge = np.abs(plane.max(axis=1)) < 1e-5
    assert np.all((got == inside) | near_edge)
    assert inside.sum() > 50


def test_landmark_weight_map_dilation_and_brows():
  size = 64
  lms = jnp.asarray(_face_landmarks(1, np.random.default_rng(8)))
  hard = np.asarray(losses.landmark_weight_map(lms, size, 3.0, 1.0, dilate=0.0, softness=0.0))
  grown = np.asarray(losses.landmark_weight_map(lms, size, 3.0, 1.0, dilate=0.05, softness=0.0))
  assert np.all(grown[hard == 3.0] == 3.0)
  assert (grown == 3.0).sum() > (hard == 3.0).sum()
  brows = np.asarray(losses.landmark_weight_map(lms, size, 3.0, 1.0, include_brows=True,
                                                dilate=0.0, softness=0.0))
  r, c = _pixel(np.asarray(lms[0, 19]) + [0, 0.05], size)  # just below the right brow
  assert hard[0, r, c, 0] == 1.0 and brows[0, r, c, 0] == 3.0


def test_landmark_weight_map_degenerate_points_do_not_cover_the_image():
  lms = jnp.zeros((1, 68, 2))  # e.g. a face without landmarks
  wmap = np.asarray(losses.landmark_weight_map(lms, 32, 3.0, 2.0))
  assert wmap[0, 0, 0, 0] == pytest.approx(1.0, abs=1e-3)
  assert np.isfinite(wmap).all()


def test_landmark_weight_map_rejects_bad_shape():
  with pytest.raises(UserError):
    losses.landmark_weight_map(jnp.zeros((1, 5, 2)), 32)


@pytest.mark.parametrize("batch", [1, 8])
def test_losses_under_jit_with_batch_sizes(batch):
  rng = np.random.default_rng(9)
  x = rng.uniform(size=(batch, 16, 16, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1).astype(np.float32)
  lms = _face_landmarks(batch, rng)

  @jax.jit
  def all_losses(x, y, lms):
    w = losses.landmark_weight_map(lms, 16)
    return {"mse": losses.mse(x, y, w), "l1": losses.l1(x, y), "psnr": losses.psnr(x, y),
            "ssim": losses.ssim(x, y), "dssim": losses.dssim(x, y),
            "tv": losses.total_variation(x), "w": w}

  out = jax.tree.map(np.asarray, all_losses(x, y, lms))
  d = x.astype(np.float64) - y
  wf = np.broadcast_to(out["w"], x.shape)
  assert out["mse"] == pytest.approx((wf * d * d).sum() / wf.sum(), rel=1e-5)
  assert out["l1"] == pytest.approx(np.abs(d).mean(), rel=1e-5)
  assert out["psnr"].shape == out["ssim"].shape == (batch,)
  np.testing.assert_allclose(out["ssim"], _ssim_map_ref(x, y).mean(axis=(1, 2, 3)), atol=1e-4)
  assert out["w"].shape == (batch, 16, 16, 1)


def test_dssim_and_weighted_mse_gradients_are_finite_and_descend():
  rng = np.random.default_rng(10)
  target = rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)
  x = np.full_like(target, 0.5)  # flat image: zero variance, the hardest case for SSIM
  w = losses.landmark_weight_map(jnp.asarray(_face_landmarks(2, rng)), 16)

  def loss(x):
    return losses.dssim(x, target) + losses.mse(x, target, w)

  value, grad = jax.jit(jax.value_and_grad(loss))(x)
  assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)).max() > 0
  assert float(loss(x - 0.05 * grad / np.abs(grad).max())) < float(value)


def test_laplacian_pyramid_collapses_back_exactly():
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  pyr = losses.laplacian_pyramid(x, levels=3)
  assert [p.shape[1] for p in pyr] == [32, 16, 8, 4]
  cur = pyr[-1]
  for band in reversed(pyr[:-1]):
    cur = band + jax.image.resize(cur, band.shape, "linear")
  np.testing.assert_allclose(cur, x, atol=1e-5)
  # A flat image has empty bands; its pyramid loss against itself is 0.
  flat = jnp.full((1, 16, 16, 3), 0.3)
  assert all(float(jnp.abs(b).max()) < 1e-6 for b in losses.laplacian_pyramid(flat, 2)[:-1])
  assert float(losses.laplacian_l1(x, x)) == 0.0
  with pytest.raises(UserError, match="divisible by 8"):
    losses.laplacian_pyramid(jnp.zeros((1, 20, 20, 3)), levels=3)


def test_laplacian_l1_weighs_lost_detail_more_than_mse():
  """Blurring loses detail: per unit of pixel L1, the pyramid loss counts a blur more than
  a brightness shift (which only its low-pass level sees)."""
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  k = jnp.ones((3, 3, 1, 3)) / 9.0
  blurred = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", feature_group_count=3,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
  shift = x + jnp.sqrt(losses.mse(blurred, x))
  np.testing.assert_allclose(losses.mse(shift, x), losses.mse(blurred, x), rtol=1e-4)
  ratio = lambda a: float(losses.laplacian_l1(a, x) / losses.l1(a, x))  # noqa: E731
  np.testing.assert_allclose(ratio(shift), 1.0, rtol=1e-4)
  assert ratio(blurred) > 1.2


def test_focal_frequency_without_focus_is_mse():
  """alpha=0 weighs every frequency alike; with the orthonormal FFT (Parseval) the loss is
  then the pixel MSE. With alpha=1 the worst frequency gets weight 1, the rest less."""
  x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 3))
  y = jax.random.uniform(jax.random.key(3), (2, 16, 16, 3))
  np.testing.assert_allclose(losses.focal_frequency(x, y, alpha=0.0), losses.mse(x, y),
                             rtol=1e-4)
  assert 0.0 < float(losses.focal_frequency(x, y)) < float(losses.mse(x, y))
  assert float(losses.focal_frequency(x, x)) == 0.0
  g = jax.grad(lambda a: losses.focal_frequency(a, y))(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))


def test_ssim_of_a_batch_sharded_over_devices_needs_no_collectives():
  """SSIM is per image: on a batch sharded over the 8 test devices its loss and gradient
  compile without any resharding (stacking statistics on the batch axis once did)."""
  import re  # pylint: disable=import-outside-toplevel
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel
  mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  x = jax.device_put(jnp.linspace(0, 1, 16 * 16 * 16 * 3).reshape(16, 16, 16, 3), sharding)
  y = jax.device_put(jnp.full((16, 16, 16, 3), 0.5), sharding)
  hlo = jax.jit(jax.value_and_grad(losses.dssim)).lower(x, y).compile().as_text()
  found = {op: len(re.findall(rf"\b{op}(-start)?\(", hlo))
           for op in ("all-gather", "all-to-all", "collective-permute")}
  assert found == {"all-gather": 0, "all-to-all": 0, "collective-permute": 0}, found
