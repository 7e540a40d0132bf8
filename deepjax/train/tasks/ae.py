"""The plain face-swap autoencoder task (shared encoder, one decoder per identity).

Training, as faceswap does it: each identity's faces go through a random
affine augmentation; the encoder sees a randomly *warped* copy and the
identity's own decoder must reproduce the unwarped face. Swapping is decoding
a face of A with B's decoder. Loss: weighted MSE / L1 / DSSIM, with extra
weight on the eyes and mouth where landmarks are known.

Batches (from `deepjax.data.pipeline.swap_iterator`): "a", "b" uint8
(B,S,S,3); "a_landmarks", "b_landmarks" float32 (B,68,2) in [-1,1];
"a_has_landmarks", "b_has_landmarks" bool (B,).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepjax import losses
from deepjax.errors import UserError
from deepjax.models import swap as swap_models
from deepjax.ops import augment, color_augment
from deepjax.train import optim
from deepjax.train.state import TrainState

IDENTITIES = ("a", "b")


def learning_rate(opt_cfg, num_steps: int):
  """`opt_cfg.learning_rate` as is (schedule "constant", the default), or with schedule
  "cosine": a linear warm-up over `warmup_steps` then a cosine decay to
  `end_factor` x the rate at `num_steps` (optax.warmup_cosine_decay_schedule)."""
  kind = opt_cfg.get("schedule", "constant")
  if kind == "constant":
    return opt_cfg.learning_rate
  if kind != "cosine":
    raise UserError(f"optimizer.schedule must be 'constant' or 'cosine', got {kind!r}")
  peak = opt_cfg.learning_rate
  return optax.warmup_cosine_decay_schedule(
      0.0, peak, warmup_steps=int(opt_cfg.get("warmup_steps", 0)),
      decay_steps=max(1, int(num_steps)), end_value=peak * float(opt_cfg.get("end_factor", 0.05)))


def make_optimizer(opt_cfg, num_steps: int = 1) -> optax.GradientTransformation:
  """Adam (faceswap: lr 5e-5, b1 0.5, b2 0.999; deepjax.train.optim, optax.adam's maths and
  state) with optional global-norm clipping and the learning-rate schedule of
  `learning_rate` over `num_steps`."""
  tx = optim.adam(learning_rate(opt_cfg, num_steps), b1=opt_cfg.get("b1", 0.5),
                  b2=opt_cfg.get("b2", 0.999))
  if opt_cfg.get("clip_norm"):
    tx = optax.chain(optax.clip_by_global_norm(opt_cfg.clip_norm), tx)
  return tx


def to_float(images_uint8):
  """uint8 (B,H,W,3) -> float32 in [0,1]."""
  return images_uint8.astype(jnp.float32) / 255.0


class AETask:
  """Face-swap autoencoder: the reference family that VAE and GAN extend."""
  images_per_example = 2  # one face of A and one of B per batch row

  def __init__(self, config):
    self.config = config
    self.model = swap_models.from_config(config.model)
    self.tx = make_optimizer(config.optimizer, config.num_steps)

  # --- data -----------------------------------------------------------------
  def data_iterator(self, config, batch_size, seed, split):
    from deepjax.data import pipeline  # pylint: disable=import-outside-toplevel
    return pipeline.swap_iterator(config.data, batch_size, seed, split)

  # --- state ----------------------------------------------------------------
  def init_params(self, rng, batch):
    x = jnp.zeros(batch["a"].shape, jnp.float32)
    return self.model.init(rng, x, method=self.model.init_all)["params"]

  def init(self, rng, batch) -> TrainState:
    init_rng, run_rng = jax.random.split(rng)
    params = self.init_params(init_rng, batch)
    return TrainState.create(params, self.tx.init(params), run_rng)

  # --- losses ---------------------------------------------------------------
  def loss_weights(self, batch, ident):
    """(B,S,S,1) eye/mouth weighting where landmarks are known, else ones."""
    lcfg = self.config.loss
    size = batch[ident].shape[1]
    wmap = losses.landmark_weight_map(batch[f"{ident}_landmarks"], size,
                                      lcfg.get("eye_weight", 1.0), lcfg.get("mouth_weight", 1.0))
    has = batch[f"{ident}_has_landmarks"].reshape(-1, 1, 1, 1)
    return jnp.where(has, wmap, jnp.ones_like(wmap))

  def augmented_pair(self, key, batch, ident):
    """(warped, colour-jittered input, target, target weight) for one identity's faces."""
    x = to_float(batch[ident])
    w = self.loss_weights(batch, ident)
    k_geo, k_col = jax.random.split(key)
    inputs, targets = augment.augment_pair(k_geo, jnp.concatenate([x, w], -1), self.config.augment)
    inputs = color_augment.color_augment(k_col, inputs[..., :3], self.config.get("color_augment"))
    return inputs, targets[..., :3], targets[..., 3:]

  def reconstruction_loss(self, pred, target, weight):
    lcfg = self.config.loss
    total = 0.0
    if lcfg.get("mse", 0.0):
      total += lcfg.mse * losses.mse(pred, target, weight)
    if lcfg.get("l1", 0.0):
      total += lcfg.l1 * losses.l1(pred, target, weight)
    if lcfg.get("ssim", 0.0):
      total += lcfg.ssim * losses.dssim(pred, target)
    if lcfg.get("laplacian", 0.0):
      total += lcfg.laplacian * losses.laplacian_l1(pred, target)
    if lcfg.get("focal_frequency", 0.0):
      total += lcfg.focal_frequency * losses.focal_frequency(pred, target)
    return total

  def encode_identities(self, params, inputs, rng=None):
    """{ident: (B,S,S,3)} -> {ident: (latent, stats)}, in ONE encoder call.

    A's and B's faces go through the shared encoder as one batch of 2B: in a
    data-parallel step each encoder gradient is then all-reduced once, not once per
    identity (tests/test_scaling.py reads the compiled HLO), and the convolutions are
    twice as large. The faces are interleaved (a0, b0, a1, b1, ...) rather than
    concatenated, so each device's rows stay on that device (no all-to-all). The
    encoder has no cross-example statistics, so the result equals separate calls (up
    to float summation order). `rng`: the VAE's sampling key.
    """
    k = len(IDENTITIES)
    x = jnp.stack([inputs[i] for i in IDENTITIES], axis=1)  # (B, k, S, S, 3)
    x = x.reshape((-1,) + x.shape[2:])
    z, stats = self.model.apply({"params": params}, x, rng, method=self.model.encode)

    def split(t):
      t = t.reshape((-1, k) + t.shape[1:])
      return {i: t[:, n] for n, i in enumerate(IDENTITIES)}
    zs = split(z)
    stats_by = ({i: None for i in IDENTITIES} if stats is None else
                {i: tuple(split(t)[i] for t in stats) for i in IDENTITIES})
    return {i: (zs[i], stats_by[i]) for i in IDENTITIES}

  def decode(self, params, z, ident):
    """Latent -> (rgb, mask or None) with `ident`'s decoder."""
    return self.model.apply({"params": params}, z, ident, method=self.model.decode)

  def loss_fn(self, params, batch, key, step=0):
    """Returns (loss, metrics) for one batch; `key` drives augmentation. `step` (the
    training step) is unused here; subclasses' losses may depend on it (VAETask)."""
    del step
    total, metrics = 0.0, {}
    keys = jax.random.split(key, len(IDENTITIES))
    pairs = {ident: self.augmented_pair(k, batch, ident) for k, ident in zip(keys, IDENTITIES)}
    latents = self.encode_identities(params, {i: pairs[i][0] for i in IDENTITIES})
    for ident in IDENTITIES:
      _, tgt, w = pairs[ident]
      pred, _ = self.decode(params, latents[ident][0], ident)
      loss = self.reconstruction_loss(pred, tgt, w)
      metrics[f"loss_{ident}"] = loss
      metrics[f"psnr_{ident}"] = jnp.mean(losses.psnr(pred, tgt))
      total += loss
    metrics["loss"] = total
    return total, metrics

  # --- steps ----------------------------------------------------------------
  def train_step(self, state: TrainState, batch):
    grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
    (_, metrics), grads = grad_fn(state.params, batch, state.step_key(), state.step)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def swap(self, params, images, to_identity: str):
    """float (B,S,S,3) faces -> decoded as `to_identity`: (rgb, mask or None)."""
    rgb, mask, _ = self.model.apply({"params": params}, images, to_identity)
    return rgb, mask

  def eval_step(self, state: TrainState, batch):
    """Reconstruction PSNR / SSIM of unaugmented faces (no gradient)."""
    out = {}
    for ident in IDENTITIES:
      x = to_float(batch[ident])
      rec, _ = self.swap(state.params, x, ident)
      out[f"psnr_{ident}"] = jnp.mean(losses.psnr(rec, x))
      out[f"ssim_{ident}"] = jnp.mean(losses.ssim(rec, x))
    return out

  def preview(self, state: TrainState, batch, max_rows: int = 6):
    """uint8 grid; columns A, A->A, A->B, B, B->B, B->A; one row per example."""
    a = to_float(batch["a"][:max_rows])
    b = to_float(batch["b"][:max_rows])
    cols = [a, self.swap(state.params, a, "a")[0], self.swap(state.params, a, "b")[0],
            b, self.swap(state.params, b, "b")[0], self.swap(state.params, b, "a")[0]]
    return image_grid(cols)


def image_grid(columns, pad: int = 2):
  """List of (n,H,W,3) float arrays (one per column) -> uint8 (n*(H+pad), k*(W+pad), 3)."""
  stack = jnp.stack(columns, axis=1)  # n, k, H, W, 3
  stack = jnp.pad(stack, ((0, 0), (0, 0), (0, pad), (0, pad), (0, 0)), constant_values=1.0)
  n, k, h, w, c = stack.shape
  grid = stack.transpose(0, 2, 1, 3, 4).reshape(n * h, k * w, c)
  return (jnp.clip(grid, 0, 1) * 255 + 0.5).astype(jnp.uint8)


def numpy_grid(columns, pad: int = 2) -> np.ndarray:
  return np.asarray(image_grid([jnp.asarray(c) for c in columns], pad))
