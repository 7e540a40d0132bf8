"""A small CNN that regresses the 68 landmarks of synthetic faces (the pose/expression judge).

Swap evaluation needs the pose and expression of a model's *output*. The
renderer knows the landmarks of the ground truth but not of the output, so a
regressor trained on synthetic faces (many identities, random motion,
renderer landmarks as labels) locates them. Its own accuracy on held-out
synthetic faces is measured and reported with every evaluation, so a reader
can tell the judge's error from the model's.

Training images are partly blurred (downscaled and upscaled) so that the
regressor also reads the softer outputs of face-swap models. Identities used
for training are seeds >= TRAIN_IDENTITY_BASE (never the swap identities 1 and 2
of the configs); the held-out test set uses other identity seeds and motions.

Landmarks are (x, y) in [-1, 1] (docs/CONTRACTS.md). The error measure is
the NME: mean point-to-point distance divided by the outer inter-ocular
distance (points 36 and 45), as in 300-W.
"""
import json
import os
import time

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from deepjax.errors import UserError
from deepjax.io_utils import atomic_path, write_text_atomic

VERSION = 1
TRAIN_IDENTITY_BASE = 100_000
TEST_IDENTITY_BASE = 200_000
DEFAULTS = dict(size=64, n_train=4096, n_test=512, steps=2000, batch=32,
                learning_rate=2e-3, features=(32, 64, 96, 128), seed=0)


class LandmarkRegressor(nn.Module):
  """(B,S,S,3) float32 in [0,1] -> (B,68,2) landmarks in [-1,1]."""
  features: tuple = (32, 64, 96, 128)
  hidden: int = 256

  @nn.compact
  def __call__(self, x_BxSxSx3):
    x = x_BxSxSx3.astype(jnp.float32) * 2.0 - 1.0
    for f in self.features:
      x = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2))(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden)(x))
    out = nn.Dense(68 * 2, kernel_init=nn.initializers.zeros)(x)
    return out.reshape(-1, 68, 2)


def nme(pred_Bx68x2, gt_Bx68x2):
  """Per-image NME: mean point distance / outer inter-ocular distance, float (B,)."""
  pred, gt = np.asarray(pred_Bx68x2, np.float64), np.asarray(gt_Bx68x2, np.float64)
  dist = np.linalg.norm(pred - gt, axis=-1).mean(-1)
  iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
  return dist / np.maximum(iod, 1e-9)


def pixel_error(pred_Bx68x2, gt_Bx68x2, size: int):
  """Per-image mean point distance in pixels of a size x size image, float (B,)."""
  d = np.linalg.norm(np.asarray(pred_Bx68x2, np.float64) - np.asarray(gt_Bx68x2, np.float64), axis=-1)
  return d.mean(-1) * size / 2.0


def synthetic_set(n: int, size: int, identity_base: int, motion_seed: int, blur_seed=None):
  """n faces of n different identities with random motion: (images (n,S,S,3), landmarks)."""
  from deepjax.data import synthetic  # pylint: disable=import-outside-toplevel
  ids = synthetic.stack_identities([synthetic.sample_identity(identity_base + i)
                                    for i in range(n)])
  images, marks = synthetic.render(ids, synthetic.sample_motion(motion_seed, n), size)
  images = np.asarray(images)
  if blur_seed is not None:  # soften half of the faces: down to S/2 or S/4 and back
    rng = np.random.default_rng(blur_seed)
    for factor in (2, 4):
      pick = rng.uniform(size=n) < 0.25
      if pick.any():
        small = jax.image.resize(images[pick], (int(pick.sum()), size // factor,
                                                size // factor, 3), "linear")
        images[pick] = np.asarray(jax.image.resize(small, (int(pick.sum()), size, size, 3),
                                                   "linear"))
  return images.astype(np.float32), np.asarray(marks, np.float32)


def train(settings: dict | None = None):
  """Trains the regressor on synthetic faces; -> (params, report dict).

  report: settings, train seconds, and the held-out NME / pixel error
  (mean and 90th percentile) on unseen identities: sharp faces, and the same
  faces with about half of them blurred as in training.
  """
  s = {**DEFAULTS, **(settings or {})}
  t0 = time.perf_counter()
  x_train, y_train = synthetic_set(s["n_train"], s["size"], TRAIN_IDENTITY_BASE,
                                   s["seed"] + 11, blur_seed=s["seed"] + 12)
  model = LandmarkRegressor(tuple(s["features"]))
  params = model.init(jax.random.key(s["seed"]), jnp.zeros((1, s["size"], s["size"], 3)))
  params = params["params"]
  # Start at the mean shape: the output layer's bias.
  params["Dense_1"]["bias"] = jnp.asarray(y_train.mean(0).reshape(-1))
  sched = optax.cosine_decay_schedule(s["learning_rate"], s["steps"])
  tx = optax.adam(sched)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, x, y):
    def loss_fn(p):
      return jnp.mean(jnp.abs(model.apply({"params": p}, x) - y))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  rng = np.random.default_rng(s["seed"])
  for i in range(s["steps"]):
    idx = rng.integers(0, len(x_train), s["batch"])
    params, opt, loss = step(params, opt, x_train[idx], y_train[idx])
    if (i + 1) % 500 == 0 or i + 1 == s["steps"]:
      logging.info(f"landmark regressor: step {i + 1}/{s['steps']} | L1 {float(loss):.4f}")
  train_s = time.perf_counter() - t0
  report = {"settings": s, "train_seconds": round(train_s, 1), "version": VERSION,
            "test": accuracy(params, s)}
  return params, report


def accuracy(params, settings: dict) -> dict:
  """Held-out error: sharp and blurred faces of unseen identities."""
  s = {**DEFAULTS, **settings}
  out = {}
  for name, blur in (("sharp", None), ("half_blurred", s["seed"] + 99)):
    x, y = synthetic_set(s["n_test"], s["size"], TEST_IDENTITY_BASE, s["seed"] + 21, blur)
    pred = predict(params, x, s)
    e, px = nme(pred, y), pixel_error(pred, y, s["size"])
    out[name] = {"nme_mean": float(e.mean()), "nme_p90": float(np.percentile(e, 90)),
                 "pixels_mean": float(px.mean()), "n": int(len(x))}
  return out


def predict(params, images_NxHxWx3, settings: dict | None = None, chunk: int = 128):
  """Landmarks (N,68,2) of float images (any square size; resized to the regressor's)."""
  s = {**DEFAULTS, **(settings or {})}
  model = LandmarkRegressor(tuple(s["features"]))
  size = s["size"]
  fn = _predict_fn(model, size)
  images = np.asarray(images_NxHxWx3, np.float32)
  outs = [np.asarray(fn(params, images[i:i + chunk])) for i in range(0, len(images), chunk)]
  return np.concatenate(outs) if outs else np.zeros((0, 68, 2), np.float32)


def _predict_fn(model, size):
  @jax.jit
  def f(params, x):
    if x.shape[1:3] != (size, size):
      x = jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=True)
    return model.apply({"params": params}, x)
  return f


# --- files ----------------------------------------------------------------------
def save(folder: str, params, report: dict) -> None:
  """params.msgpack + report.json in `folder` (both atomic)."""
  os.makedirs(folder, exist_ok=True)
  with atomic_path(os.path.join(folder, "params.msgpack")) as tmp:
    with open(tmp, "wb") as f:
      f.write(flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, params)))
  write_text_atomic(os.path.join(folder, "report.json"), json.dumps(report, indent=2))


def load(folder: str):
  """-> (params, report) saved by `save`; UserError if absent or unreadable."""
  p, r = os.path.join(folder, "params.msgpack"), os.path.join(folder, "report.json")
  if not (os.path.isfile(p) and os.path.isfile(r)):
    raise UserError(f"no landmark regressor in {folder} (the evaluation task "
                    "train_landmarks of deepjax evaluate trains one)")
  try:
    with open(p, "rb") as f:
      params = flax.serialization.msgpack_restore(f.read())
    with open(r) as f:
      report = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read the landmark regressor in {folder}: {e}") from None
  return params, report


def default_cache_dir() -> str:
  return os.path.join(os.path.expanduser("~"), ".cache", "deepjax", f"landmark_regressor_v{VERSION}")


def load_or_train(folder: str | None = None):
  """The regressor in `folder` (default: the cache); trains and saves it when absent."""
  folder = folder or default_cache_dir()
  if os.path.isfile(os.path.join(folder, "params.msgpack")):
    return load(folder)
  logging.info(f"training the landmark regressor once (about 1-2 min on CPU) into {folder}")
  params, report = train()
  save(folder, params, report)
  return params, report
