"""MotionTask with thin-plate-spline motion (config.model.name "tpsmm"): schedules, the
image-size rule, and 8 training steps on the tiny config at 32 px (which networks update
when; finite losses; no claim that 8 steps lower the loss)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.models.motion import tpsmm as tpsmm_lib
from deepjax.train.tasks.motion import MotionTask, clip_by_inf_norm
from test_motion_task import synthetic_pair_batch


def tiny_config(size=32, steps=8):
  c = load_config("tpsmm_vox256", f"tiny,batch=2,steps={steps}")
  c.unlock()
  c.data.update(size=size, frame_shape=(size, size, 3))
  c.model.num_tps = 3
  c.model.generator.update(block_expansion=8, max_features=32)
  c.model.dense_motion.update(block_expansion=8, max_features=32)
  c.model.avd.update(id_bottle_size=8, pose_bottle_size=8)
  # 8 steps = 8 epochs: the background predictor starts at epoch (step) 2, dropout stops at 4.
  c.train.update(num_epochs=8, epoch_milestones=(6,), bg_start=2, dropout_epoch=4,
                 dropout_inc_epoch=2, lr_generator=2e-3)
  return c


def test_dropout_schedule_by_hand():
  cfg = dict(dropout_epoch=35, dropout_maxp=0.3, dropout_startp=0.1, dropout_inc_epoch=10)
  for epoch, on, p in [(0, True, 0.1), (5, True, 0.25), (7, True, 0.3), (34, True, 0.3),
                       (35, False, 0.0)]:
    got_on, got_p = tpsmm_lib.dropout_schedule(epoch, cfg)
    assert bool(got_on) == on
    np.testing.assert_allclose(float(got_p), p, rtol=1e-6)


def test_clip_by_inf_norm():
  tx = clip_by_inf_norm(10.0)
  g = {"a": jnp.array([30.0, -5.0]), "b": jnp.array([[1.0]])}
  out, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(out["a"], [10.0, -5.0 / 3], rtol=1e-5)
  np.testing.assert_allclose(out["b"], [[1.0 / 3]], rtol=1e-5)
  small = {"a": jnp.array([3.0])}
  np.testing.assert_allclose(tx.update(small, tx.init(small))[0]["a"], [3.0])


@pytest.mark.slow
def test_short_fit_background_start_and_frozen_avd():
  c = tiny_config()
  task = MotionTask(c)
  batch = synthetic_pair_batch()
  state = jax.jit(task.init)(jax.random.key(0), batch)
  assert set(state.params) == {"kp_detector", "dense_motion_network", "inpainting_network",
                               "bg_predictor", "avd_network"}
  assert set(state.opt_state) == set(state.params) - {"avd_network"}
  step = jax.jit(task.train_step)
  states, metrics = [state], []
  for _ in range(8):
    state, m = step(state, batch)
    states.append(state)
    metrics.append({k: float(v) for k, v in m.items()})
  assert all(np.isfinite(v) for m in metrics for v in m.values())
  assert {"loss_perceptual", "loss_equivariance_value", "loss_warp_loss", "loss_bg"} <= set(
      metrics[0])
  # Background: no update before epoch 2, updates from then on. Its loss is 0 until the
  # first update (the predictor starts at the identity, whose loss is exactly 0).
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(  # noqa: E731
      jax.tree.leaves(a), jax.tree.leaves(b)))
  bg = [s.params["bg_predictor"] for s in states]
  assert same(bg[0], bg[2]) and not same(bg[2], bg[3])
  assert metrics[2]["loss_bg"] == 0.0 and metrics[3]["loss_bg"] > 0.0
  assert same(states[0].params["avd_network"], states[-1].params["avd_network"])
  assert not same(states[0].params["kp_detector"], states[-1].params["kp_detector"])
  # Evaluation and preview in one compiled call (one compilation instead of two).
  ev, grid = jax.jit(lambda s, b: (task.eval_step(s, b), task.preview(s, b)))(state, batch)
  assert np.isfinite(float(ev["l1"]))
  grid = np.asarray(grid)
  assert grid.dtype == np.uint8 and grid.shape == (2 * 34, 4 * 34, 3)


def test_image_size_rule():
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.train import validate  # pylint: disable=import-outside-toplevel
  for arg in ("tiny", None):
    validate.check_image_size(load_config("tpsmm_vox256", arg))
  c = tiny_config()
  validate.check_image_size(c)  # 32 px
  c.data.size = 60
  with pytest.raises(UserError, match="nearest sides it supports are 32 or 64"):
    validate.check_image_size(c)
