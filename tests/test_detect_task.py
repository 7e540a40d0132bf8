"""The detect task: its loss falls, a separable toy set reaches AUC 1; depthwise conv."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.data import synthetic
from deepjax.eval import detection
from deepjax.ops import conv
from deepjax.train.tasks import build_task
from deepjax.train.tasks.detect import balance_classes

SIZE = 32


def micro_config(**detect):
  c = load_config("detect", "tiny,mask")
  with c.unlocked():
    c.model.update(stem=8, stages=((8, 1, 1, 3, 1), (16, 1, 2, 3, 2), (16, 1, 2, 3, 2)),
                   head=32, dropout=0.0, mask_stage=1, depthwise="lax")
    c.data.size = SIZE
    c.optimizer.learning_rate = 3e-3
    c.detect.augment = {}  # tests/test_detect_augment.py covers it
    c.detect.update(detect)
  return c


def toy_batch(seed, n):
  """n/2 real synthetic faces (label 0, with landmarks) and n/2 toy fakes: other faces
  with a bright square pasted on the cheek (label 1, its mask, no landmarks)."""
  ids = synthetic.stack_identities([synthetic.sample_identity(seed * 100 + i) for i in range(n)])
  img, lm = synthetic.render(ids, synthetic.sample_motion(seed, n), SIZE)
  img = (img * 255).round().astype(np.uint8)
  half = n // 2
  mask = np.zeros((n, SIZE, SIZE, 1), np.uint8)
  mask[half:, 12:24, 4:16] = 255
  img[half:, 12:24, 4:16] = 255
  label = (np.arange(n) >= half).astype(np.int32)
  return {"image": img, "landmarks": lm.astype(np.float32), "has_landmarks": label == 0,
          "label": label, "mask": mask, "index": np.arange(n, dtype=np.int32) + seed * n,
          "clip_id": (np.arange(n, dtype=np.int32) % 2) + 10 * seed,
          "valid": np.ones(n, bool)}


@pytest.fixture(scope="module")
def trained():
  task = build_task(micro_config(eval_sbi=False))
  batch = toy_batch(0, 16)
  state = task.init(jax.random.key(0), batch)
  step = jax.jit(task.train_step)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  return task, state, losses


def test_loss_falls(trained):
  _, _, losses = trained
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_auc_on_separable_toy_set(trained):
  task, state, _ = trained
  held_out = [toy_batch(1, 8), toy_batch(2, 8)]
  out = detection.evaluate(task, state, held_out)
  assert out["auc"] == 1.0 and out["n_real"] == 8 and out["n_fake"] == 8, out
  assert out["n_videos"] == 8 and out["video_auc"] == 1.0  # 2 batches x 2 clips x 2 labels


@pytest.mark.slow  # compiles the self-blend twice more (eval step and preview)
def test_eval_step_appends_self_blends(trained):
  task, state, _ = trained
  sbi_task = build_task(micro_config(eval_sbi=True))
  batch = toy_batch(1, 8)
  out = jax.device_get(jax.jit(sbi_task.eval_scores)(state, batch))
  assert out["score"].shape == (16,)
  np.testing.assert_array_equal(out["label"], np.r_[batch["label"], np.ones(8)])
  # Self-blends only of the real crops with landmarks.
  np.testing.assert_array_equal(out["valid"], np.r_[np.ones(8, bool), batch["label"] == 0])
  metrics = jax.device_get(jax.jit(sbi_task.eval_step)(state, batch))
  assert 0 <= metrics["auc"] <= 1 and 0 <= metrics["accuracy"] <= 1
  grid = np.asarray(jax.jit(task.preview)(state, batch))
  assert grid.dtype == np.uint8 and grid.shape == (6 * (SIZE + 2), 4 * (SIZE + 2), 3)


@pytest.mark.parametrize("k,stride", [(3, 1), (5, 2)])
def test_depthwise_conv_matches_lax(k, stride):
  x = jax.random.normal(jax.random.key(0), (2, 9, 8, 5))
  w = jax.random.normal(jax.random.key(1), (k, k, 5))

  def ref(x, w):
    return jax.lax.conv_general_dilated(x, w[:, :, None, :], (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=5, precision="highest")
  def both(x, w):
    c = jax.random.normal(jax.random.key(2), ref(x, w).shape)
    got = conv.depthwise_conv(x, w, stride)
    g_ref = jax.grad(lambda x, w: jnp.sum(ref(x, w) * c), (0, 1))(x, w)
    g_got = jax.grad(lambda x, w: jnp.sum(conv.depthwise_conv(x, w, stride) * c), (0, 1))(x, w)
    return got, ref(x, w), g_got, g_ref
  got, want, g_got, g_ref = jax.jit(both)(x, w)
  np.testing.assert_allclose(got, want, atol=1e-5)
  for a, b in zip(g_got, g_ref):
    np.testing.assert_allclose(a, b, atol=5e-5)


def test_loop_keeps_the_checkpoint_best_on_validation_people(tmp_path):
  """eval_split='validation' + keep_best='auc': RUN/best holds the step whose pooled
  validation AUC was highest, and scoring that checkpoint again gives the recorded AUC."""
  import json  # pylint: disable=import-outside-toplevel
  from deepjax.train import loop  # pylint: disable=import-outside-toplevel
  c = micro_config()
  with c.unlocked():
    c.model.mask_head = False
    c.detect.mask_weight = 0.0
    c.data.update(synthetic_identities=5, synthetic_frames=6, data_dir=str(tmp_path / "tfds"),
                  test_identities=("synthetic_4",), val_identities=("synthetic_3",))
    c.update(batch_size=4, mesh_devices=1, num_steps=6, eval_every=2, checkpoint_every=6, preview_every=0,
             log_every=2, eval_batches=100, eval_split="validation", keep_best="auc")
  run = str(tmp_path / "run")
  loop.train_and_evaluate(c, run)
  with open(tmp_path / "run" / "best" / "best.json", encoding="utf-8") as f:
    best = json.load(f)
  assert best["metric"] == "auc" and best["split"] == "validation" and best["step"] in (2, 4, 6)
  steps = [d for d in os.listdir(tmp_path / "run" / "best") if d.isdigit()]
  assert steps == [str(best["step"])]
  again = detection.evaluate_workdir(str(tmp_path / "run" / "best"), "validation")
  assert again["step"] == best["step"] and again["auc"] == pytest.approx(best["value"])
  assert again["n_real"] == 6 and again["n_fake"] == 6  # one person's 6 crops + their blends
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  saved = loading.load_state(str(tmp_path / "run" / "best"))
  _, params, _ = loading.load(str(tmp_path / "run" / "best"))  # the moving average
  jax.tree.map(np.testing.assert_array_equal, params, saved["model_state"]["ema_params"])
  bad = micro_config()
  with bad.unlocked():
    bad.update(keep_best="auc", eval_every=0)
  with pytest.raises(Exception, match="keep_best"):
    loop.train_and_evaluate(bad, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")


def test_moving_average_of_parameters_is_what_scores():
  """detect.ema_decay: model_state["ema_params"] follows the parameters with the warm-up
  decay min(ema_decay, (1 + t) / (10 + t)), and evaluation scores with it."""
  task = build_task(micro_config(ema_decay=0.999))
  batch = toy_batch(0, 8)
  state0 = task.init(jax.random.key(0), batch)
  chex_equal = lambda a, b: jax.tree.map(  # noqa: E731
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), a, b)
  chex_equal(state0.model_state["ema_params"], state0.params)
  state1, _ = jax.jit(task.train_step)(state0, batch)
  expected = jax.tree.map(lambda p0, p1: 0.1 * p0 + 0.9 * p1, state0.params, state1.params)
  chex_equal(state1.model_state["ema_params"], expected)  # t = 0: decay 1/10
  assert task.inference_params(state1) is state1.model_state["ema_params"]
  swapped = state1.replace(params=state0.params)  # scores must not depend on .params
  a = task.eval_scores(state1, batch)["score"]
  b = task.eval_scores(swapped, batch)["score"]
  np.testing.assert_allclose(a, b, rtol=1e-6)
  plain = build_task(micro_config(ema_decay=0.0))
  assert plain.init(jax.random.key(0), batch).model_state == {}


def test_class_balance_gives_real_and_fake_rows_equal_total_weight():
  """detect.balance_classes: each class carries half of the batch's weight; zero weights
  stay zero; a batch with one class only keeps its weights."""
  labels = jnp.array([0.0, 1.0, 1.0, 1.0, 0.0])
  w = balance_classes(labels, jnp.array([1.0, 1.0, 1.0, 1.0, 0.0]))
  np.testing.assert_allclose(w, [2.0, 2 / 3, 2 / 3, 2 / 3, 0.0], rtol=1e-6)
  only_fake = jnp.array([0.0, 1.0, 1.0])
  np.testing.assert_allclose(balance_classes(jnp.ones(3), only_fake), only_fake)
  assert build_task(micro_config(balance_classes=True)).opts["balance_classes"] is True


def test_input_filters_remove_what_they_say():
  """model.input_filter: "highpass" scores an image and its per-channel offset alike (no
  flat colour reaches the stem), "standardize" an image and its per-channel gain and offset
  alike (no lighting reaches it); without a filter both pairs score differently; a filter
  outside INPUT_FILTERS is a one-line UserError."""
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  from deepjax.models import detect as detect_models  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(0.2, 0.6, (1, SIZE, SIZE, 3)), jnp.float32)
  pairs = {"highpass": (x, x + jnp.array([[[[0.1, -0.05, 0.2]]]])),
           "standardize": (x, x * jnp.array([[[[1.3, 0.8, 1.1]]]]) + 0.1)}

  def logits(kind, a, b):
    c = micro_config()
    with c.unlocked():
      c.model.input_filter = kind
    model = detect_models.from_config(c.model)
    params = model.init(jax.random.key(0), a)["params"]
    return [float(model.apply({"params": params}, im)[0][0]) for im in (a, b)]

  for kind, (a, b) in pairs.items():
    la, lb = logits(kind, a, b)
    assert abs(la - lb) < 1e-4 * max(1.0, abs(la)), kind
    la, lb = logits("none", a, b)
    assert abs(la - lb) > 1e-3, kind
  c = micro_config()
  with c.unlocked():
    c.model.input_filter = "sobel"
  with pytest.raises(UserError, match="input_filter"):
    detect_models.from_config(c.model)


def test_default_is_the_measured_recipe_and_plain_the_earlier_one():
  """`configs/detect.py:tiny` is what the README's high-pass + framing rows were trained with
  (`:tiny,highpass`, their flags), and `:tiny,plain` differs from it in those fields alone."""
  recipe, plain = load_config("detect", "tiny"), load_config("detect", "tiny,plain")
  for args in ("tiny,highpass", "tiny,plain,highpass"):
    assert load_config("detect", args).to_dict() == recipe.to_dict()
  assert (recipe.model.input_filter, recipe.model.dropout) == ("highpass", 0.3)
  assert (plain.model.input_filter, plain.model.dropout) == ("none", 0.1)
  assert (recipe.optimizer.weight_decay, plain.optimizer.weight_decay) == (0.05, 1e-4)
  colour = ("hue", "saturation", "brightness", "contrast")
  assert all(recipe.detect.augment[k] == 0.0 for k in colour)
  assert all(plain.detect.augment[k] > 0.0 for k in colour)
  assert recipe.detect.augment["rotation_deg"] == plain.detect.augment["rotation_deg"] > 0
  with recipe.unlocked():
    recipe.model.update(input_filter=plain.model.input_filter, dropout=plain.model.dropout)
    recipe.optimizer.weight_decay = plain.optimizer.weight_decay
    recipe.detect.augment.update({k: plain.detect.augment[k] for k in colour})
  assert recipe.to_dict() == plain.to_dict()
