"""First-order-motion keypoint maths against hand-worked values, numpy and scipy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import ConvexHull

from deepjax.ops import keypoints as kpo


def test_make_coordinate_grid_values():
  g = np.asarray(kpo.make_coordinate_grid(3, 5))
  assert g.shape == (3, 5, 2)
  np.testing.assert_allclose(g[0, :, 0], [-1, -0.5, 0, 0.5, 1])
  np.testing.assert_allclose(g[:, 0, 1], [-1, 0, 1])
  np.testing.assert_allclose(g[2, 3], [0.5, 1.0])


def test_heatmap_to_keypoints_one_hot_and_mixture():
  hm = np.zeros((1, 5, 7, 2), np.float32)
  hm[0, 2, 4, 0] = 1.0  # x = 2*4/6 - 1 = 1/3, y = 2*2/4 - 1 = 0
  hm[0, 0, 0, 1] = 0.5  # (-1, -1)
  hm[0, 4, 6, 1] = 0.5  # (1, 1): mean (0, 0)
  kp = np.asarray(kpo.heatmap_to_keypoints(jnp.asarray(hm)))
  np.testing.assert_allclose(kp[0, 0], [1 / 3, 0.0], atol=1e-6)
  np.testing.assert_allclose(kp[0, 1], [0.0, 0.0], atol=1e-6)


def test_spatial_softmax_temperature():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
  out = np.asarray(kpo.spatial_softmax(jnp.asarray(logits), 0.1))
  flat = logits.reshape(2, 12, 5) / 0.1
  e = np.exp(flat - flat.max(1, keepdims=True))
  np.testing.assert_allclose(out.reshape(2, 12, 5), e / e.sum(1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("maps", [1, 3])
def test_heatmap_to_jacobians_matches_nchw_loop(maps):
  rng = np.random.default_rng(1)
  b, h, w, k = 2, 4, 5, 3
  hm = rng.random((b, h, w, k)).astype(np.float32)
  jm = rng.standard_normal((b, h, w, 4 * maps)).astype(np.float32)
  out = np.asarray(kpo.heatmap_to_jacobians(jnp.asarray(hm), jnp.asarray(jm)))
  expected = np.zeros((b, k, 2, 2))
  for bi in range(b):
    for ki in range(k):
      j = ki if maps == k else 0
      for t in range(4):
        expected[bi, ki, t // 2, t % 2] = np.sum(hm[bi, :, :, ki] * jm[bi, :, :, 4 * j + t])
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_kp2gaussian_formula_and_peak():
  kp = np.array([[[0.0, 0.0], [0.5, -1.0]]], np.float32)  # (1, 2, 2)
  g = np.asarray(kpo.kp2gaussian(jnp.asarray(kp), (5, 5), 0.01))
  assert g.shape == (1, 5, 5, 2)
  assert g[0, 2, 2, 0] == pytest.approx(1.0)  # grid point (0, 0)
  assert g[0, 0, 3, 1] == pytest.approx(1.0)  # grid point (x=0.5, y=-1)
  # (row 1, col 2) is (x=0, y=-0.5): distance^2 to kp0 is 0.25.
  assert g[0, 1, 2, 0] == pytest.approx(np.exp(-0.5 * 0.25 / 0.01), rel=1e-5)


def test_batched_inv_2x2_vs_numpy():
  rng = np.random.default_rng(2)
  m = rng.standard_normal((3, 4, 2, 2)).astype(np.float32) + 2 * np.eye(2, dtype=np.float32)
  np.testing.assert_allclose(np.asarray(kpo.batched_inv_2x2(jnp.asarray(m))), np.linalg.inv(m),
                             rtol=1e-4, atol=1e-4)


def test_convex_hull_area_vs_scipy_and_degenerate():
  rng = np.random.default_rng(3)
  pts = rng.uniform(-1, 1, (6, 10, 2)).astype(np.float32)
  areas = np.asarray(jax.jit(kpo.convex_hull_area)(jnp.asarray(pts)))
  np.testing.assert_allclose(areas, [ConvexHull(p).volume for p in pts], rtol=1e-5)
  # A unit square with an interior, an edge and a repeated point; a line (area 0).
  square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.5, 0], [1, 1]], np.float32)
  line = np.array([[0, 0], [1, 1], [2, 2], [0.5, 0.5], [1, 1], [0, 0], [2, 2]], np.float32)
  areas = jax.jit(kpo.convex_hull_area)(jnp.asarray(np.stack([square, line])))
  np.testing.assert_allclose(np.asarray(areas), [1.0, 0.0], atol=1e-6)


def _kp(values, jacobians):
  return {"value": jnp.asarray(values, jnp.float32)[None],
          "jacobian": jnp.asarray(jacobians, jnp.float32)[None]}


def test_relative_motion_worked_example():
  # Source triangle area 0.5, initial driving triangle area 0.125: scale sqrt(4) = 2.
  src = _kp([[0, 0], [1, 0], [0, 1]], [np.diag([2.0, 1.0])] * 3)
  init = _kp([[0, 0], [0.5, 0], [0, 0.5]], [np.diag([1.0, 2.0])] * 3)
  drv = _kp(np.array([[0, 0], [0.5, 0], [0, 0.5]]) + [0.1, -0.05], [[[1.0, 1.0], [0.0, 2.0]]] * 3)
  out = kpo.relative_motion(src, drv, init, adapt_movement_scale=True, use_relative_movement=True,
                            use_relative_jacobian=True)
  np.testing.assert_allclose(np.asarray(out["value"][0]),
                             np.array([[0, 0], [1, 0], [0, 1]]) + [0.2, -0.1], atol=1e-6)
  # J_d inv(J_init) J_s = [[1, 1], [0, 2]] diag(1, 1/2) diag(2, 1) = [[2, 0.5], [0, 1]].
  np.testing.assert_allclose(np.asarray(out["jacobian"][0, 1]), [[2, 0.5], [0, 1]], atol=1e-6)
  # Without scale adaptation the offset is passed through as is.
  out = kpo.relative_motion(src, drv, init, use_relative_movement=True)
  np.testing.assert_allclose(np.asarray(out["value"][0, 2]), [0.1, 0.95], atol=1e-6)
  np.testing.assert_allclose(np.asarray(out["jacobian"]), np.asarray(drv["jacobian"]))
  # Without relative movement the driving keypoints are returned unchanged.
  out = kpo.relative_motion(src, drv, init, adapt_movement_scale=True)
  np.testing.assert_allclose(np.asarray(out["value"]), np.asarray(drv["value"]))


def test_relative_motion_broadcasts_over_frames():
  rng = np.random.default_rng(4)
  src = {"value": jnp.asarray(rng.uniform(-1, 1, (1, 5, 2)), jnp.float32)}
  init = {"value": jnp.asarray(rng.uniform(-1, 1, (1, 5, 2)), jnp.float32)}
  drv = {"value": jnp.asarray(rng.uniform(-1, 1, (4, 5, 2)), jnp.float32)}
  out = kpo.relative_motion(src, drv, init, adapt_movement_scale=True, use_relative_movement=True)
  s = np.sqrt(ConvexHull(np.asarray(src["value"][0])).volume /
              ConvexHull(np.asarray(init["value"][0])).volume)
  expected = s * (np.asarray(drv["value"]) - np.asarray(init["value"])) + np.asarray(src["value"])
  np.testing.assert_allclose(np.asarray(out["value"]), expected, rtol=1e-5, atol=1e-5)


# ---- TPS (deepjax.ops.tps) -------------------------------------------------------------

from deepjax.ops import tps  # noqa: E402


def _np_warp(theta, cparams, cpoints, z):
  """Independent numpy version of the reference's Transform.warp_coordinates (one sample)."""
  out = z @ theta[:, :2].T + theta[:, 2]
  d = np.abs(z[:, None, :] - cpoints[None]).sum(-1)
  return out + ((d ** 2) * np.log(d + 1e-6) * cparams[None]).sum(-1, keepdims=True)


def test_tps_identity_warp_and_frame():
  p = tps.tps_identity_params(2, points_tps=5)
  z = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (2, 7, 2)), jnp.float32)
  frame = jnp.asarray(np.random.default_rng(6).random((2, 6, 5, 3)), jnp.float32)

  @jax.jit
  def run(p, z, frame):
    return (tps.tps_warp_coordinates(p, z), tps.tps_jacobian(p, z),
            tps.tps_transform_frame(p, frame, align_corners=True))

  warped, jac, out = (np.asarray(a) for a in run(p, z, frame))
  np.testing.assert_allclose(warped, np.asarray(z), atol=1e-6)
  np.testing.assert_allclose(jac, np.broadcast_to(np.eye(2), jac.shape), atol=1e-6)
  np.testing.assert_allclose(out, np.asarray(frame), atol=1e-5)


def test_tps_random_warp_and_jacobian_vs_numpy():
  p = tps.tps_sample_params(jax.random.key(0), 3, sigma_affine=0.05, sigma_tps=0.05, points_tps=5)
  assert p["theta"].shape == (3, 2, 3) and p["control_params"].shape == (3, 25)
  z = np.random.default_rng(7).uniform(-1, 1, (3, 4, 2)).astype(np.float32)
  out, jac = jax.jit(lambda p, z: (tps.tps_warp_coordinates(p, z), tps.tps_jacobian(p, z)))(
      p, jnp.asarray(z))
  out, jac = np.asarray(out), np.asarray(jac)
  theta, cpar, cpts = (np.asarray(p[k], np.float64) for k in
                       ("theta", "control_params", "control_points"))
  for b in range(3):
    np.testing.assert_allclose(out[b], _np_warp(theta[b], cpar[b], cpts, z[b].astype(np.float64)),
                               atol=1e-5)
  h = 1e-4
  for b in range(3):
    for j in range(2):
      dz = np.zeros_like(z[b], np.float64)
      dz[:, j] = h
      fd = (_np_warp(theta[b], cpar[b], cpts, z[b] + dz) -
            _np_warp(theta[b], cpar[b], cpts, z[b] - dz)) / (2 * h)
      np.testing.assert_allclose(jac[b, :, :, j], fd, atol=2e-4)


def test_tps_sample_statistics():
  p = tps.tps_sample_params(jax.random.key(1), 4000, sigma_affine=0.05, sigma_tps=0.005,
                            points_tps=5)
  noise = np.asarray(p["theta"]) - np.eye(2, 3)
  assert abs(noise.std() - 0.05) < 0.003 and abs(noise.mean()) < 0.003
  assert abs(np.asarray(p["control_params"]).std() - 0.005) < 0.0003


def test_equivariance_losses_zero_for_identity():
  p = tps.tps_identity_params(2, points_tps=5)
  rng = np.random.default_rng(8)
  kp = jnp.asarray(rng.uniform(-1, 1, (2, 10, 2)), jnp.float32)
  jac = jnp.asarray(rng.standard_normal((2, 10, 2, 2)) + 3 * np.eye(2), jnp.float32)
  assert float(tps.equivariance_value_loss(p, kp, kp)) == pytest.approx(0.0, abs=1e-6)
  assert float(tps.equivariance_jacobian_loss(p, kp, jac, jac)) == pytest.approx(0.0, abs=1e-5)
  # A shifted transform with unshifted keypoints is penalised by the shift.
  shifted = dict(p, theta=p["theta"].at[:, 0, 2].set(0.1))
  assert float(tps.equivariance_value_loss(shifted, kp, kp)) == pytest.approx(0.05, abs=1e-6)
