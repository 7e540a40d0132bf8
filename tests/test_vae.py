"""The VAE face-swap task: KL closed form, warm-up, latent decoding, training on the loop."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax import losses
from deepjax.configs_lib import load_config
from deepjax.loading import load_params
from deepjax.testing import small_swap_config
from deepjax.train import loop
from deepjax.train.tasks import build_task
from deepjax.train.tasks.vae import kl_weight


def small_vae(tmp_path, steps=30, mesh_devices=1, arch="original", **vae):
  c = small_swap_config("faceswap_vae", tmp_path / "datasets", steps, preview_every=0,
                        mesh_devices=mesh_devices)
  with c.unlocked():
    if arch == "seeds":
      c.model = load_config("faceswap_ae", "seeds").model
      c.model.variational = True
    c.vae.update(vae)
  return c


def test_kl_matches_closed_form_by_hand():
  # KL(N(m, s^2) || N(0, 1)) = 0.5 (s^2 + m^2 - 1 - log s^2), summed over dimensions.
  mean = np.array([[0.0, 1.0], [2.0, -0.5]], np.float32)
  var = np.array([[1.0, 0.25], [4.0, 1.0]], np.float32)
  expected = [0.5 * ((0.25 + 1.0 - 1.0 - np.log(0.25))),
              0.5 * ((4.0 + 4.0 - 1.0 - np.log(4.0)) + (1.0 + 0.25 - 1.0))]
  got = losses.kl_divergence(jnp.asarray(mean), jnp.log(jnp.asarray(var)))
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)


def test_kl_term_in_the_loss_is_the_closed_form(tmp_path):
  """The task's KL metric equals numpy's closed form on the encoder's own (mean, logvar)."""
  c = small_vae(tmp_path)
  task = build_task(c)
  rng = np.random.default_rng(0)
  batch = {k: rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8) for k in ("a", "b")}
  for k in ("a", "b"):
    batch[f"{k}_landmarks"] = rng.uniform(-0.5, 0.5, (4, 68, 2)).astype(np.float32)
    batch[f"{k}_has_landmarks"] = np.ones((4,), bool)
  params = task.init(jax.random.key(0), batch).params
  # Non-zero log-variances: perturb the logvar head.
  params = jax.tree_util.tree_map_with_path(
      lambda p, x: x + 0.01 * jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) / x.size
      if "logvar" in jax.tree_util.keystr(p) else x, params)
  _, metrics = task.loss_fn(params, batch, jax.random.key(1), step=10 ** 6)
  keys = jax.random.split(jax.random.key(1), 4)
  inp, _, _ = task.augmented_pair(keys[0], batch, "a")
  _, (mean, logvar) = task.model.apply({"params": params}, inp, method=task.model.encode)
  m, lv = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
  kl = 0.5 * (np.exp(lv) + m ** 2 - 1.0 - lv).sum(-1).mean() / (32 * 32 * 3)
  assert np.std(lv) > 0
  np.testing.assert_allclose(float(metrics["kl_a"]), kl, rtol=1e-4)


def test_kl_weight_warms_up_linearly():
  cfg = load_config("faceswap_vae", "tiny,beta=0.5,warmup=10").vae
  got = [float(kl_weight(cfg, s)) for s in (0, 5, 10, 50)]
  np.testing.assert_allclose(got, [0.0, 0.25, 0.5, 0.5], rtol=1e-6)


@pytest.mark.parametrize("arch", ["original", "seeds"])
def test_decode_latent_of_the_mean_equals_the_swap(tmp_path, arch):
  c = small_vae(tmp_path, arch=arch)
  task = build_task(c)
  x = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3))
  params = task.model.init(jax.random.key(1), x, method=task.model.init_all)["params"]
  z = task.encode_mean(params, x)
  assert z.shape == (3,) + task.latent_shape(32)
  for ident in ("a", "b"):
    direct, _ = task.swap(params, x, ident)
    np.testing.assert_allclose(np.asarray(task.decode_latent(params, z, ident)),
                               np.asarray(direct), atol=1e-5)
  samples = task.sample(params, jax.random.key(2), 5, 32)
  assert samples["a"].shape == samples["b"].shape == (5, 32, 32, 3)
  line = task.interpolate(params, x[0], x[1], 4)
  np.testing.assert_allclose(np.asarray(line["b"][0]), np.asarray(task.swap(params, x[:1], "b")[0][0]),
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(line["a"][-1]), np.asarray(task.swap(params, x[1:2], "a")[0][0]),
                             atol=1e-5)


def test_sampling_uses_the_variance(tmp_path):
  """With an rng the encoder samples around the mean: outputs differ from the mean's."""
  task = build_task(small_vae(tmp_path))
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  params = task.model.init(jax.random.key(1), x, method=task.model.init_all)["params"]
  det, _, _ = task.model.apply({"params": params}, x, "a")
  sto, _, (mean, logvar) = task.model.apply({"params": params}, x, "a", jax.random.key(3))
  assert mean.shape == logvar.shape == (2, 64)
  assert float(jnp.max(jnp.abs(det - sto))) > 1e-4


@pytest.mark.parametrize("devices", [1, 8])
def test_vae_trains_on_the_loop_and_restores(tmp_path, devices, logged):
  c = small_vae(tmp_path, steps=30, mesh_devices=devices, warmup_steps=10)
  out = loop.train_and_evaluate(c, str(tmp_path / "run"))
  assert out["step"] == 30
  steps = [l for l in logged.lines if l.startswith("step ")]
  rec = [float(l.split("| loss_a ")[1].split()[0]) + float(l.split("| loss_b ")[1].split()[0])
         for l in steps]
  kl = [float(l.split("| kl ")[1].split()[0]) for l in steps]
  assert all(np.isfinite(rec)) and all(np.isfinite(kl)) and all(k >= 0 for k in kl)
  assert np.mean(rec[-2:]) < 0.8 * np.mean(rec[:2]), rec
  restored = load_params(str(tmp_path / "run"))
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(out["state"].params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert os.path.isdir(tmp_path / "run" / "checkpoints")
