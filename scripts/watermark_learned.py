"""Experiment: a small learned watermark (embedder + extractor trained through a
differentiable noise layer) for 256 px frames, measured with the real H.264 where
deepjax's spread-spectrum mark misses its target (docs/provenance.md).

    python scripts/watermark_learned.py --steps 2500 --eval_clips tpsmm_driving lp_d3

Training frames: every 4th of the first 4 n frames (n = --train_frames) of the clips in
../shared/data/videos that the robustness table does not use, resized to 256 x 256
(luminance only).
- Embedder: the luminance pooled to 64 x 64 through a 3 x 3 convolution, with the 64
  message bits (+-1) as 64 more channels at every position, through three 3 x 3
  convolutions to one channel, upsampled bilinearly to 256 x 256, made zero-mean and
  scaled to RMS `strength` grey levels (2.4: PSNR 40.5 dB, as deepjax's mark), added to
  R, G and B alike.
- Noise layer, drawn per example: brightness x U(0.9, 1.1); half size (2 x 2 mean, with
  probability 3/4); then, with a probability rising from 0 to 1 over the first 40 % of the
  steps (while the mark's strength falls from 4 times its final RMS to it), one of: 4 x 4
  block DCT coefficients rounded to a step drawn from U(4, 20) grey levels
  (straight-through gradient), Gaussian noise of std U(0, 4), nothing.
- Extractor: the luminance minus its 9 x 9 box mean, through convolutions (32, then 64
  and 64 channels at stride 2, then 64), global mean, a dense layer to 64 logits; any
  frame size.
- Loss: binary cross-entropy of the 64 bits; Adam.
Evaluation: the 64-bit message of the payload and its CRC-32 (`watermark_code.message_bits`)
embedded in the frames of each evaluation clip, written as deepjax writes videos (CRF 15),
then the transformations of `watermark_robustness.py`; per transformation: accuracy of the
32 payload bits per frame, and the share of frames whose 64 bits are all right (the CRC
holds: what a frame decoding to the exact payload means for deepjax's mark).
"""
import argparse
import os
import sys
import tempfile
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.scipy.fft as jfft
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import watermark_alternatives as walt  # pylint: disable=wrong-import-position
import watermark_robustness as wr  # pylint: disable=wrong-import-position
from deepjax.provenance import watermark_code as wcode  # pylint: disable=wrong-import-position
from deepjax.provenance.watermark_carrier import LUMA  # pylint: disable=wrong-import-position

BITS = 64
SIZE = 256


class Embedder(nn.Module):
  """(B, 256, 256) luminance in [0, 255], (B, 64) +-1 -> the mark (B, 256, 256), RMS
  `strength` grey levels times `boost` (training starts louder)."""
  strength: float = 2.4

  @nn.compact
  def __call__(self, y, m, boost=1.0):
    b = y.shape[0]
    f = nn.relu(nn.Conv(32, (3, 3))(nn.avg_pool(y[..., None] / 255.0 - 0.5, (4, 4), (4, 4))))
    msg = jnp.broadcast_to(m[:, None, None, :], (b, 64, 64, m.shape[-1]))
    h = jnp.concatenate([f, msg], -1)
    for _ in range(2):
      h = nn.relu(nn.Conv(32, (3, 3))(h))
    r = nn.Conv(1, (3, 3))(h)
    r = jax.image.resize(r, (b, SIZE, SIZE, 1), "bilinear")[..., 0]
    r = r - r.mean((1, 2), keepdims=True)
    return boost * self.strength * r / jnp.sqrt(jnp.mean(r ** 2, (1, 2), keepdims=True) + 1e-8)


class Extractor(nn.Module):
  """(B, H, W) luminance in [0, 255] -> (B, 64) logits. It reads the luminance minus its
  9 x 9 box mean (most of the picture removed), divided by 32."""

  @nn.compact
  def __call__(self, y):
    y = y[..., None]
    h = (y - nn.avg_pool(y, (9, 9), padding="SAME", count_include_pad=False)) / 32.0
    h = nn.relu(nn.Conv(32, (3, 3))(h))
    h = nn.relu(nn.Conv(64, (3, 3), strides=2)(h))
    h = nn.relu(nn.Conv(64, (3, 3), strides=2)(h))
    h = nn.Conv(64, (3, 3))(h)
    return nn.Dense(BITS)(h.mean((1, 2)))


def _block_quantise(y, step):
  """(H, W) -> its 4 x 4 block DCT (orthonormal) rounded to `step`, straight-through."""
  h, w = y.shape
  c = jfft.dctn(y.reshape(h // 4, 4, w // 4, 4), axes=(1, 3), norm="ortho")
  q = c + jax.lax.stop_gradient(jnp.round(c / step) * step - c)
  return jfft.idctn(q, axes=(1, 3), norm="ortho").reshape(h, w)


def _noise(key, y, ramp):
  """One example (256, 256) through the noise layer -> (128, 128) and (256, 256) (both
  are returned, the caller chooses: static shapes). The codec's distortions are applied
  with probability `ramp` (0 -> 1 over the first 40 % of training), else nothing."""
  k = jax.random.split(key, 6)
  y = y * jax.random.uniform(k[0], (), minval=0.9, maxval=1.1)

  def codec(z):
    kind = jnp.where(jax.random.uniform(k[5]) < ramp, jax.random.randint(k[1], (), 0, 3), 2)
    quantised = _block_quantise(z, jax.random.uniform(k[2], (), minval=4.0, maxval=20.0))
    noisy = z + jax.random.normal(k[3], z.shape) * jax.random.uniform(k[4], (), maxval=4.0)
    return jnp.select([kind == 0, kind == 1], [quantised, noisy], z)

  half = y.reshape(SIZE // 2, 2, SIZE // 2, 2).mean((1, 3))
  return codec(half), codec(y)


def train(frames, steps, batch, seed=0):
  """frames: float32 (N, 256, 256) luminance -> (params of both, seconds taken)."""
  emb, ext = Embedder(), Extractor()
  key = jax.random.PRNGKey(seed)
  k1, k2, key = jax.random.split(key, 3)
  params = {"emb": emb.init(k1, frames[:1], jnp.ones((1, BITS))),
            "ext": ext.init(k2, frames[:1, ::2, ::2])}
  opt = optax.adam(1e-3)
  state = opt.init(params)

  def loss_fn(p, y, m, key, ramp):
    marked = y + emb.apply(p["emb"], y, m, 1.0 + 3.0 * (1.0 - ramp))
    halves, fulls = jax.vmap(_noise, (0, 0, None))(jax.random.split(key, y.shape[0]), marked,
                                                   ramp)
    target = (m > 0).astype(jnp.float32)
    quarter = y.shape[0] // 4  # a quarter of the batch at full size
    logits = jnp.concatenate([ext.apply(p["ext"], fulls[:quarter]),
                              ext.apply(p["ext"], halves[quarter:])])
    loss = optax.sigmoid_binary_cross_entropy(logits, target).mean()
    return loss, jnp.mean((logits > 0) == (target > 0))

  @jax.jit
  def step(p, s, y, m, key, ramp):
    (loss, acc), g = jax.value_and_grad(loss_fn, has_aux=True)(p, y, m, key, ramp)
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss, acc

  rng = np.random.default_rng(seed)
  t0 = time.time()
  for n in range(1, steps + 1):
    idx = rng.integers(0, len(frames), batch)
    y = jnp.asarray(frames[idx])
    y = jnp.where(rng.random() < 0.5, y, y[:, :, ::-1])
    m = jnp.asarray(rng.choice([-1.0, 1.0], (batch, BITS)), jnp.float32)
    key, sub = jax.random.split(key)
    ramp = jnp.float32(min(1.0, n / (0.4 * steps)))
    params, state, loss, acc = step(params, state, y, m, sub, ramp)
    if n % 100 == 0:
      print(f"step {n} ({time.time() - t0:.0f} s): loss {float(loss):.3f}, "
            f"training bit accuracy {float(acc):.3f}", flush=True)
  return params, time.time() - t0


def training_frames(n_per_clip):
  videos = sorted(f[:-4] for f in os.listdir(os.path.join(wr.DATA, "videos"))
                  if f.endswith(".mp4") and f[:-4] not in wr.CLIPS)
  out = [walt.frames_of(v, 2 * n_per_clip, SIZE)[::2] for v in videos]
  return np.concatenate([f.astype(np.float32) @ LUMA for f in out]), videos


def evaluate(params, clip, n, folder):
  emb, ext = Embedder(), Extractor()
  truth = wcode.message_bits(wr.PAYLOAD)
  frames = walt.frames_of(clip, n, SIZE)
  y = frames.astype(np.float32) @ LUMA
  mark = np.asarray(emb.apply(params["emb"], jnp.asarray(y),
                              jnp.asarray(np.repeat(2.0 * truth[None] - 1, n, 0), jnp.float32)))
  marked = np.clip(np.round(frames + mark[..., None]), 0, 255).astype(np.uint8)
  psnr = wr.psnr_db(marked, frames)
  rows = {}
  for name, out in wr.transforms(marked, folder).items():
    logits = np.asarray(ext.apply(params["ext"], jnp.asarray(out.astype(np.float32) @ LUMA)))
    right = (logits > 0) == truth[None].astype(bool)
    rows[name] = (float(right[:, :32].mean()), float(np.mean(right.all(1))))
  return psnr, rows


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=2500)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--train_frames", type=int, default=64, help="per training clip")
  ap.add_argument("--eval_clips", nargs="+", default=["tpsmm_driving", "lp_d3"])
  ap.add_argument("--eval_frames", type=int, default=24)
  args = ap.parse_args()
  frames, videos = training_frames(args.train_frames)
  print(f"training on {len(frames)} frames of {len(videos)} clips: {' '.join(videos)}")
  params, seconds = train(frames, args.steps, args.batch)
  print(f"{args.steps} steps in {seconds / 60:.1f} min; per frame: payload bit accuracy / share of "
        "frames with all 64 bits right")
  with tempfile.TemporaryDirectory() as folder:
    for clip in args.eval_clips:
      psnr, rows = evaluate(params, clip, args.eval_frames, folder)
      print(clip, f"PSNR {psnr:.2f} dB  " + "  ".join(
          f"{k} {a:.3f} / {e:.2f}" for k, (a, e) in rows.items()), flush=True)


if __name__ == "__main__":
  main()
