"""Deepfake detection: a classifier of real vs fake face crops, trained on the one loop.

Every training step doubles the batch: each real crop with landmarks gets a
self-blended fake made on the fly inside the jitted step (`deepjax.ops.self_blend`),
so the detector can train on real faces alone; fakes present in the data (generated
by deepjax's swap/animation models) are used as they come, with their masks. Every
training input, real or fake, then gets the same kind of random flip, framing, colour and
quality jitter (`detect.augment`, `deepjax.ops.detect_augment`). Loss:
binary cross-entropy on the logit (fake = 1), plus, with a mask head, a per-pixel
binary cross-entropy of the low-resolution manipulation mask (`detect.mask_weight`). With
`detect.balance_classes` the real and the fake rows of every batch carry equal total weight
in both (and in the logged training accuracy), however many generated fakes the batch holds.
With `detect.ema_decay` > 0 the state also keeps an exponential moving average of the
parameters (`model_state["ema_params"]`; decay min(ema_decay, (1 + t) / (10 + t)) at step
t, so early averages are not dominated by the initialisation); evaluation, the best
checkpoint, `deepjax detect` and `deepjax.load` use it (`inference_params`).

Batches (`deepjax.data.detection_pipeline.detection_iterator`): "image" uint8
(B,S,S,3), "landmarks" float32 (B,68,2) in [-1,1], "has_landmarks" bool (B,),
"label" int32 (B,) (0 real, 1 fake), "mask" uint8 (B,S,S,1) (255 = manipulated),
"clip_id" int32 (B,) (optional), "index" int32 (B,) (record index), "valid" bool (B,)
(False for eval padding).

`eval_scores` returns per-example scores for the batch's crops followed by
self-blends of its real crops (`detect.eval_sbi`), with labels and validity;
`pooled_summary` turns a pass over a split into AUC / EER / accuracy (the loop's held-out
evaluation calls it through `eval_summary`; `deepjax.eval.detection.evaluate` is the same);
`eval_step` gives per-batch figures (AUC, accuracy, mean scores).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepjax.eval import detection_metrics  # pure NumPy ROC / EER (docs/CONTRACTS.md)
from deepjax.models import detect as detect_models
from deepjax.ops import detect_augment, self_blend
from deepjax.train.state import TrainState
from deepjax.train.tasks.ae import image_grid, to_float

DETECT_DEFAULTS = dict(flip_prob=0.5, mask_weight=0.0, eval_sbi=True, eval_seed=1234,
                       augment=None, ema_decay=0.0, balance_classes=False)


def make_optimizer(opt_cfg) -> optax.GradientTransformation:
  """AdamW with optional global-norm clipping."""
  tx = optax.adamw(opt_cfg.learning_rate, b1=opt_cfg.get("b1", 0.9),
                   b2=opt_cfg.get("b2", 0.999), weight_decay=opt_cfg.get("weight_decay", 1e-4))
  if opt_cfg.get("clip_norm"):
    tx = optax.chain(optax.clip_by_global_norm(opt_cfg.clip_norm), tx)
  return tx


def collect_scores(task, state, batches, eval_fn=None):
  """(scores float (N,), labels int (N,), videos int64 (N,) or None) of the valid examples
  of every batch. A video is a source clip and a label (a clip's real crops and its
  self-blends are two videos); None when the batches carry no "clip_id".

  `eval_fn`: a compiled `task.eval_scores` (default: `jax.jit(task.eval_scores)`)."""
  eval_fn = eval_fn or jax.jit(task.eval_scores)
  scores, labels, videos = [], [], []
  for batch in batches:
    out = jax.device_get(eval_fn(state, batch))
    keep = np.asarray(out["valid"], bool)
    scores.append(np.asarray(out["score"])[keep])
    labels.append(np.asarray(out["label"])[keep])
    if "clip_id" in out:
      videos.append(np.asarray(out["clip_id"], np.int64)[keep] * 2 + labels[-1])
  labels = np.concatenate(labels)
  videos = np.concatenate(videos) if len(videos) == len(scores) else None
  return np.concatenate(scores), labels, videos


def pooled_summary(task, state, batches, eval_fn=None) -> dict:
  """`detection_metrics.summary` (frame AUC, EER, accuracy, counts; video-level figures
  when the batches carry clip ids and both classes have a video) over all `batches`."""
  return summarize(*collect_scores(task, state, batches, eval_fn))


def summarize(scores, labels, videos) -> dict:
  """`pooled_summary` of `collect_scores`'s arrays."""
  out = detection_metrics.summary(scores, labels)
  if videos is not None:
    _, vs, vy = detection_metrics.aggregate(scores, labels, videos)
    out.update(n_videos=int(vs.size))
    if 0 < vy.sum() < vy.size:
      out.update(video_auc=detection_metrics.roc_auc(vs, vy),
                 video_eer=detection_metrics.equal_error_rate(vs, vy),
                 video_accuracy=detection_metrics.accuracy(vs, vy))
  return out


def _flip_rows(key, *arrays_BxHxWxC):
  """Flips each row horizontally with probability 1/2 (the same rows in every array)."""
  flip = jax.random.bernoulli(key, 0.5, (arrays_BxHxWxC[0].shape[0], 1, 1, 1))
  return tuple(jnp.where(flip, a[:, :, ::-1], a) for a in arrays_BxHxWxC)


def downsample_mask(mask_BxHxWx1, hw):
  """Box average of a (B,H,W,1) mask down to (h, w) (H, W multiples of h, w)."""
  b, h, w, _ = mask_BxHxWx1.shape
  th, tw = hw
  return jnp.mean(mask_BxHxWx1.reshape(b, th, h // th, tw, w // tw, 1), axis=(2, 4))


def weighted_mean(values_B, weights_B):
  return jnp.sum(values_B * weights_B) / jnp.maximum(jnp.sum(weights_B), 1.0)


def balance_classes(labels_B, weights_B):
  """`weights_B` rescaled so that the real rows (label 0) and the fake rows carry half of
  the total weight each; unchanged when a class has no weight in the batch."""
  fake = labels_B > 0.5
  w_fake = jnp.sum(jnp.where(fake, weights_B, 0.0))
  w_real = jnp.sum(jnp.where(fake, 0.0, weights_B))
  half = 0.5 * (w_fake + w_real)
  scale = jnp.where(fake, half / jnp.maximum(w_fake, 1e-6), half / jnp.maximum(w_real, 1e-6))
  return jnp.where((w_fake > 0) & (w_real > 0), weights_B * scale, weights_B)


class DetectTask:
  """Real-vs-fake classifier with self-blended fakes made inside the step."""
  images_per_example = 2  # each batch row gives its crop and one self-blend

  def __init__(self, config):
    self.config = config
    self.model = detect_models.from_config(config.model)
    self.tx = make_optimizer(config.optimizer)
    detect_cfg = config.get("detect") or {}
    self.opts = {k: detect_cfg.get(k, v) for k, v in DETECT_DEFAULTS.items()}
    self.sbi_cfg = self_blend.read_config(dict(config.get("sbi") or {}))
    aug = self.opts["augment"] or {}
    self.augment_cfg = detect_augment.read_config(
        aug.to_dict() if hasattr(aug, "to_dict") else dict(aug))

  # --- data -----------------------------------------------------------------
  def data_iterator(self, config, batch_size, seed, split):
    from deepjax.data import detection_pipeline  # pylint: disable=import-outside-toplevel
    return detection_pipeline.detection_iterator(config.data, batch_size, seed, split)

  # --- state ----------------------------------------------------------------
  def init(self, rng, batch) -> TrainState:
    init_rng, run_rng = jax.random.split(rng)
    x = jnp.zeros(batch["image"].shape, jnp.float32)
    params = self.model.init(init_rng, x)["params"]
    model_state = {"ema_params": params} if self._ema_decay() > 0 else {}
    return TrainState.create(params, self.tx.init(params), run_rng, model_state)

  def _ema_decay(self) -> float:
    return float(self.opts["ema_decay"] or 0.0)

  @staticmethod
  def inference_params(state: TrainState):
    """The parameters to score with: the moving average when the run keeps one."""
    return (state.model_state or {}).get("ema_params", state.params)

  # --- examples ---------------------------------------------------------------
  def examples(self, key, batch):
    """(images (2B,S,S,3), labels (2B,), weights (2B,), masks (2B,S,S,1)): the batch's
    crops, then self-blends of them (weight 1 only for valid real crops with landmarks)."""
    x = to_float(batch["image"])
    b = x.shape[0]
    valid = batch.get("valid", jnp.ones((b,), bool))
    fake, sbi_mask = self_blend.self_blend(key, x, batch["landmarks"], dict(self.sbi_cfg))
    sbi_ok = valid & batch["has_landmarks"] & (batch["label"] == 0)
    images = jnp.concatenate([x, fake], 0)
    labels = jnp.concatenate([batch["label"].astype(jnp.float32), jnp.ones((b,))], 0)
    weights = jnp.concatenate([valid, sbi_ok], 0).astype(jnp.float32)
    masks = jnp.concatenate([batch["mask"].astype(jnp.float32) / 255.0, sbi_mask], 0)
    return images, labels, weights, masks

  def loss_fn(self, params, images, labels, weights, masks, dropout_key):
    logits, mask_logits = self.model.apply({"params": params}, images, train=True,
                                           rngs={"dropout": dropout_key})
    bce = weighted_mean(optax.sigmoid_binary_cross_entropy(logits, labels), weights)
    metrics = {"bce": bce}
    total = bce
    if mask_logits is not None and float(self.opts["mask_weight"]) > 0:
      target = downsample_mask(masks, mask_logits.shape[1:3])
      per_row = jnp.mean(optax.sigmoid_binary_cross_entropy(mask_logits, target), axis=(1, 2, 3))
      metrics["mask_bce"] = weighted_mean(per_row, weights)
      total = total + float(self.opts["mask_weight"]) * metrics["mask_bce"]
    correct = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
    metrics.update(loss=total, accuracy=weighted_mean(correct, weights))
    return total, metrics

  # --- steps ----------------------------------------------------------------
  def train_step(self, state: TrainState, batch):
    k_sbi, k_flip, k_drop, k_aug = jax.random.split(state.step_key(), 4)
    images, labels, weights, masks = self.examples(k_sbi, batch)
    if self.opts["balance_classes"]:
      weights = balance_classes(labels, weights)
    if float(self.opts["flip_prob"]) > 0:
      images, masks = _flip_rows(k_flip, images, masks)
    images, masks = detect_augment.detect_augment(k_aug, images, masks, self.augment_cfg)
    grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
    (_, metrics), grads = grad_fn(state.params, images, labels, weights, masks, k_drop)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    model_state = state.model_state
    if self._ema_decay() > 0:
      t = state.step.astype(jnp.float32)
      decay = jnp.minimum(self._ema_decay(), (1.0 + t) / (10.0 + t))
      model_state = dict(model_state, ema_params=optax.incremental_update(
          params, model_state["ema_params"], 1.0 - decay))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         model_state=model_state), metrics

  def scores(self, params, images_BxHxWx3):
    """Fake probabilities (B,) and mask probabilities (B,h,w,1) or None."""
    logits, mask_logits = self.model.apply({"params": params}, images_BxHxWx3)
    return jax.nn.sigmoid(logits), (None if mask_logits is None else jax.nn.sigmoid(mask_logits))

  def eval_step(self, state: TrainState, batch):
    """Batch metrics for the loop's held-out evaluation: "auc" (pairwise, NaN without
    both classes), "accuracy" (threshold 0.5), "score_real", "score_fake" (means)."""
    out = self.eval_scores(state, batch)
    w = out["valid"].astype(jnp.float32)
    fake = w * out["label"]
    real = w * (1 - out["label"])
    s = out["score"]
    wins = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    pairs = jnp.sum(fake) * jnp.sum(real)
    auc = jnp.sum(fake[:, None] * real[None, :] * wins) / jnp.where(pairs > 0, pairs, jnp.nan)
    correct = ((s >= 0.5) == (out["label"] == 1)).astype(jnp.float32)
    return {"auc": auc, "accuracy": weighted_mean(correct, w),
            "score_real": weighted_mean(s, real), "score_fake": weighted_mean(s, fake)}

  def eval_summary(self, state: TrainState, batches, eval_fn) -> dict:
    """Held-out figures over all `batches` pooled (the loop's evaluation): frame "auc",
    "eer", "accuracy" and, with two classes of videos, "video_auc" etc.
    (`pooled_summary`); `eval_fn` is the compiled `eval_scores`."""
    return pooled_summary(self, state, batches, eval_fn)

  def eval_scores(self, state: TrainState, batch):
    """{"score", "label", "valid"} (+ "clip_id" when the batch has it): per-example
    arrays (2B,) with self-blends of the real crops appended (valid only where made), or
    (B,) when `eval_sbi` is off.

    The self-blends are deterministic: their key is `eval_seed` folded with the
    batch's first record index."""
    if self.opts["eval_sbi"]:
      key = jax.random.fold_in(jax.random.key(int(self.opts["eval_seed"])),
                               batch["index"][0])
      images, labels, weights, _ = self.examples(key, batch)
    else:
      images = to_float(batch["image"])
      labels = batch["label"].astype(jnp.float32)
      weights = batch.get("valid", jnp.ones(labels.shape, bool)).astype(jnp.float32)
    score, _ = self.scores(self.inference_params(state), images)
    out = {"score": score, "label": labels.astype(jnp.int32), "valid": weights > 0}
    if "clip_id" in batch:
      out["clip_id"] = jnp.tile(batch["clip_id"], images.shape[0] // batch["clip_id"].shape[0])
    return out

  def preview(self, state: TrainState, batch, max_rows: int = 6):
    """uint8 grid; columns: crop, its self-blend, the blend mask, and the predicted
    mask of the self-blend (blank without a mask head); one row per example."""
    key = jax.random.fold_in(jax.random.key(int(self.opts["eval_seed"])), 0)
    rows = {k: v[:max_rows] for k, v in batch.items()}
    images, _, _, masks = self.examples(key, rows)
    n = rows["image"].shape[0]
    real, fake, true_mask = images[:n], images[n:], masks[n:]
    _, pred = self.scores(self.inference_params(state), fake)
    size = real.shape[1]
    if pred is None:
      pred = jnp.zeros_like(true_mask)
    else:
      pred = jnp.repeat(jnp.repeat(pred, size // pred.shape[1], 1), size // pred.shape[2], 2)
    gray = lambda m: jnp.repeat(m, 3, axis=-1)  # noqa: E731
    return image_grid([real, fake, gray(true_mask), gray(pred)])
