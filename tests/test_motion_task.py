"""MotionTask (first-order motion training): schedule, fallback notice, a short fit, GAN step."""
import logging
import os

import jax
import numpy as np
import pytest

from deepjax.data import synthetic
from deepjax.testing import tiny_motion_config
from deepjax.train.tasks import build_task
from deepjax.train.tasks.motion import MotionTask, lr_schedule

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_pair_batch(size=32, n=2, seed=3):
  """Two frames of one synthetic identity per row (different poses), uint8."""
  src, drv = [], []
  for i in range(n):
    ident = synthetic.sample_identity(seed + i)
    motion = synthetic.sample_motion(seed + 10 + i, 2)
    img, _ = synthetic.render(ident, motion, size)
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    src.append(img[0])
    drv.append(img[1])
  return {"source": np.stack(src), "driving": np.stack(drv)}


def test_lr_schedule_milestones_by_hand():
  c = tiny_motion_config()
  c.train.update(num_epochs=10, epoch_milestones=(6, 9), lr_decay=0.1)
  sched = lr_schedule(1e-3, c.train, 100)
  # milestone 6/10 of 100 steps -> step 60; 9/10 -> step 90.
  for step, want in [(0, 1e-3), (59, 1e-3), (60, 1e-4), (89, 1e-4), (90, 1e-5), (99, 1e-5)]:
    np.testing.assert_allclose(float(sched(step)), want, rtol=1e-6)


def test_registry_and_fallback_notice(caplog):
  c = tiny_motion_config()
  with caplog.at_level(logging.WARNING, logger="absl"):
    task = build_task(c)
  assert isinstance(task, MotionTask)
  assert task.vgg is None
  assert any("fallback" in r.getMessage() for r in caplog.records)


def test_missing_vgg_file_is_user_error(tmp_path):
  from deepjax.errors import UserError
  c = tiny_motion_config()
  c.loss.vgg_weights = str(tmp_path / "nope.npz")
  with pytest.raises(UserError):
    MotionTask(c)


@pytest.mark.slow
def test_short_fit_lowers_reconstruction_loss():
  c = tiny_motion_config()
  task = MotionTask(c)
  batch = synthetic_pair_batch()
  state = jax.jit(task.init)(jax.random.key(0), batch)
  assert set(state.params) == {"kp_detector", "generator"}
  assert "batch_stats" in state.model_state["generator"]
  step = jax.jit(task.train_step)
  losses = []
  for _ in range(16):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss_perceptual"]))
  assert np.all(np.isfinite(losses))
  assert int(state.step) == 16
  # The same fixed pair, 16 Adam steps: the reconstruction term must fall clearly.
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
  ev = jax.jit(task.eval_step)(state, batch)
  assert np.isfinite(float(ev["l1"]))
  grid = np.asarray(jax.jit(task.preview)(state, batch))
  assert grid.dtype == np.uint8 and grid.shape == (2 * 34, 4 * 34, 3)
  # Column 0 of the grid is the source itself.
  np.testing.assert_array_equal(grid[:32, :32], batch["source"][0])


@pytest.mark.slow
def test_gan_step_updates_discriminator():
  c = tiny_motion_config(gan=1.0)
  task = MotionTask(c)
  batch = synthetic_pair_batch()
  state = jax.jit(task.init)(jax.random.key(1), batch)
  assert "discriminator" in state.params
  before = jax.tree.map(np.asarray, state.params["discriminator"])
  new, metrics = jax.jit(task.train_step)(state, batch)
  for k in ("loss_generator_gan", "loss_feature_matching", "loss_discriminator"):
    assert np.isfinite(float(metrics[k])), k
  after = jax.tree.map(np.asarray, new.params["discriminator"])
  changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before),
                                                   jax.tree.leaves(after))]
  assert all(changed)
