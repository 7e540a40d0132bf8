"""The GAN face-swap task: shapes, masks, both networks update, training on the loop."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.errors import UserError
from deepjax.loading import load, load_params
from deepjax.testing import small_swap_config
from deepjax.models.discriminator import PatchDiscriminator
from deepjax.train import loop
from deepjax.train.tasks import build_task
from deepjax.ops.face_hull import face_hull_mask


def small_gan(tmp_path, steps=30, mesh_devices=1, arg="tiny", **gan):
  c = small_swap_config("faceswap_gan", tmp_path / "datasets", steps, arg=arg,
                        mesh_devices=mesh_devices)
  with c.unlocked():
    c.gan.discriminator.features = (8, 16)
    c.gan.update(gan)
  return c


def random_batch(n=4, size=32, seed=0):
  rng = np.random.default_rng(seed)
  batch = {}
  for k in ("a", "b"):
    batch[k] = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    batch[f"{k}_landmarks"] = rng.uniform(-0.5, 0.5, (n, 68, 2)).astype(np.float32)
    batch[f"{k}_has_landmarks"] = np.ones((n,), bool)
  return batch


def test_patch_discriminator_shapes():
  d = PatchDiscriminator((8, 16, 32))
  x = jnp.zeros((2, 64, 64, 3))
  params = d.init(jax.random.key(0), x)
  assert d.apply(params, x).shape == (2, 8, 8, 1)


def test_face_hull_mask_matches_a_square_by_hand():
  """An outline whose points all lie on a square's border fills exactly that square."""
  lm = np.zeros((1, 68, 2), np.float32)
  # Jaw 0-16 walks left, bottom, right sides; brows 26..17 walk the top edge back.
  side = np.linspace(-0.5, 0.5, 6)
  jaw = ([(-0.5, y) for y in side[:-1]] + [(x, 0.5) for x in side[:-1]] +
         [(0.5, y) for y in np.linspace(0.5, -0.5, 7)])
  lm[0, :17] = np.array(jaw[:17])
  lm[0, 17:27] = np.array([(x, -0.5) for x in np.linspace(-0.45, 0.45, 10)])
  got = np.asarray(face_hull_mask(jnp.asarray(lm), 16))[0, ..., 0]
  c = (np.arange(16) + 0.5) / 16 * 2 - 1
  inside = (np.abs(c)[:, None] < 0.5) & (np.abs(c)[None, :] < 0.5)
  np.testing.assert_array_equal(got, inside.astype(np.float32))


def test_hull_term_pulls_a_collapsed_mask_back():
  """At a saturated mask (logit -30, mask ~1e-13) the hull term's gradient at the logit is
  (mask - hull) / pixels: -1/64 inside the hull, ~0 outside; an L1 term's vanishes there.
  Images without landmarks (has = 0) do not count."""
  from deepjax.train.tasks.gan import mask_hull_loss  # pylint: disable=import-outside-toplevel
  hull = jnp.zeros((2, 8, 8, 1)).at[:, 2:6, 2:6].set(1.0)
  has = jnp.array([1.0, 0.0])
  logits = jnp.full((2, 8, 8, 1), -30.0)
  grad = jax.grad(lambda z: mask_hull_loss(jax.nn.sigmoid(z), hull, has))(logits)
  np.testing.assert_allclose(grad[0, 2:6, 2:6, 0], -1 / 64, rtol=1e-5)
  assert float(jnp.abs(grad[0, :2]).max()) < 1e-12 and float(jnp.abs(grad[1]).max()) == 0.0
  l1 = jax.grad(lambda z: jnp.mean(jnp.abs(jax.nn.sigmoid(z[:1]) - hull[:1])))(logits)
  assert float(jnp.abs(l1).max()) < 1e-12
  # A mask equal to the hull costs less than one that is empty or full.
  on_hull = mask_hull_loss(jnp.clip(hull, 0.01, 0.99), hull, has)
  assert on_hull < mask_hull_loss(jnp.full_like(hull, 0.01), hull, has)
  assert on_hull < mask_hull_loss(jnp.full_like(hull, 0.99), hull, has)


def test_masks_are_in_unit_range_and_swap_blends(tmp_path):
  task = build_task(small_gan(tmp_path))
  state = task.init(jax.random.key(0), random_batch())
  x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3))
  out, mask = task.swap(state.params, x, "b")
  assert out.shape == (3, 32, 32, 3) and mask.shape == (3, 32, 32, 1)
  assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
  rgb, mask2, _ = task.model.apply({"params": state.params["gen"]}, x, "b")
  np.testing.assert_allclose(np.asarray(out), np.asarray(mask2 * rgb + (1 - mask2) * x),
                             atol=1e-6)
  # mask_init: the mask starts near sigmoid(2).
  assert 0.6 < float(mask.mean()) < 0.98


@pytest.mark.parametrize("loss", ["lsgan", "hinge"])
def test_one_step_updates_generator_and_both_discriminators(tmp_path, loss):
  task = build_task(small_gan(tmp_path, loss=loss, cycle_weight=1.0, identity_weight=1.0))
  batch = random_batch()
  state = task.init(jax.random.key(0), batch)
  before = jax.tree.map(np.asarray, state.params)
  new, metrics = jax.jit(task.train_step)(state, batch)
  assert int(new.step) == 1
  for k in ("loss", "d_loss", "g_adv_a", "cycle_a", "identity_b", "mask_a"):
    assert np.isfinite(float(metrics[k])), k
  for part in (("gen", "encoder"), ("gen", "decoder_a"), ("gen", "decoder_b"),
               ("disc", "a"), ("disc", "b")):
    old, cur = before[part[0]][part[1]], new.params[part[0]][part[1]]
    # Every kernel moves. (Not every bias: under the hinge loss the gradient of the
    # discriminator's last bias is mean(-1) + mean(+1) = 0 while logits are in (-1, 1).)
    flat_old = jax.tree_util.tree_flatten_with_path(old)[0]
    changed = {jax.tree_util.keystr(p): not np.array_equal(o, np.asarray(c))
               for (p, o), c in zip(flat_old, jax.tree.leaves(cur))}
    kernels = {k: v for k, v in changed.items() if "kernel" in k}
    assert kernels and all(kernels.values()), (part, changed)


def test_discriminator_step_lowers_its_loss(tmp_path):
  """Gradient direction check: after one D update the D loss on the same fakes is lower."""
  task = build_task(small_gan(tmp_path))
  batch = random_batch()
  state = task.init(jax.random.key(0), batch)
  keys = jax.random.split(state.step_key(), 2)
  views = {i: task.augmented_views(k, batch, i) for k, i in zip(keys, ("a", "b"))}
  inputs = {i: v[0] for i, v in views.items()}
  clean = {i: v[1] for i, v in views.items()}
  outs = task.generator_outputs(state.params["gen"], inputs, clean)
  d0, _ = task.disc_loss(state.params["disc"], outs, clean)
  new, _ = task.train_step(state, batch)
  d1, _ = task.disc_loss(new.params["disc"], outs, clean)
  assert float(d1) < float(d0)


def test_gan_needs_a_mask(tmp_path):
  c = small_gan(tmp_path)
  with c.unlocked():
    c.model.mask = False
  with pytest.raises(UserError, match="mask"):
    build_task(c)


def test_perceptual_off_without_weights_is_logged(tmp_path, caplog):
  with caplog.at_level(logging.WARNING, logger="absl"):
    build_task(small_gan(tmp_path))
  assert "perceptual loss is off" in caplog.text


def test_perceptual_with_a_weights_file(tmp_path, caplog):
  from deepjax.models import vgg
  params = vgg.random_vgg19_params(jax.random.key(0))
  arrays = {}
  for name, value in params.items():
    i = name[len("conv"):]
    arrays[f"features.{i}.weight"] = np.asarray(value["kernel"]).transpose(3, 2, 0, 1)
    arrays[f"features.{i}.bias"] = np.asarray(value["bias"])
  path = tmp_path / "vgg19.npz"
  np.savez(path, **arrays)
  with caplog.at_level(logging.INFO, logger="absl"):
    task = build_task(small_gan(tmp_path, vgg_weights=str(path), perceptual_layers=2))
  assert f"VGG19 weights from {path}" in caplog.text
  batch = random_batch(n=2)
  state = task.init(jax.random.key(0), batch)
  _, metrics = jax.jit(task.train_step)(state, batch)
  assert float(metrics["perceptual_a"]) > 0 and np.isfinite(float(metrics["loss"]))
  with pytest.raises(UserError, match="not found"):
    build_task(small_gan(tmp_path, vgg_weights=str(tmp_path / "missing.npz")))


@pytest.mark.parametrize("devices", [1, 8])
def test_gan_trains_on_the_loop_and_restores(tmp_path, devices, logged):
  c = small_gan(tmp_path, steps=30, mesh_devices=devices)
  out = loop.train_and_evaluate(c, str(tmp_path / "run"))
  assert out["step"] == 30
  steps = [l for l in logged.lines if l.startswith("step ")]
  rec = [float(l.split("| loss_a ")[1].split()[0]) + float(l.split("| loss_b ")[1].split()[0])
         for l in steps]
  d = [float(l.split("| d_loss ")[1].split()[0]) for l in steps]
  assert all(np.isfinite(rec)) and all(np.isfinite(d))
  assert np.mean(rec[-2:]) < 0.8 * np.mean(rec[:2]), rec
  run = str(tmp_path / "run")
  restored = load_params(run)
  assert set(restored) == {"gen", "disc"} and set(restored["disc"]) == {"a", "b"}
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(out["state"].params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  model, gen, config = load(run)
  assert config.task == "gan" and "encoder" in gen
  rgb, mask, _ = model.apply({"params": gen}, jnp.zeros((1, 32, 32, 3)), "a")
  assert rgb.shape == (1, 32, 32, 3) and mask.shape == (1, 32, 32, 1)
