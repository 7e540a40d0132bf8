"""A/B in one process: SSIM's separable Gaussian filter as a depthwise convolution (the
previous implementation) vs shifted slices (`deepjax.losses._filter_separable`), alternating.

    python scripts/ab_separable_filter.py [--rounds=2]

Prints, per round and variant, the gradient of the SSIM loss on a (16, 64, 64, 3) batch and
the `faceswap_ae:tiny` train step with `loss.ssim=1` (batch 16), both jitted and warm.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from deepjax import losses
from deepjax.configs_lib import load_config
from deepjax.train.tasks import build_task


def depthwise_conv(x, kernel, padding):
  """The convolution form: one depthwise 2-D convolution along H, one along W."""
  c, size = x.shape[-1], kernel.shape[0]
  if padding == "SAME":
    lo, hi = (size - 1) // 2, size // 2
    x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="symmetric")
  k, dn = jnp.asarray(kernel), ("NHWC", "HWIO", "NHWC")
  for shape in ((size, 1, 1, 1), (1, size, 1, 1)):
    x = jax.lax.conv_general_dilated(x, jnp.tile(k.reshape(shape), (1, 1, 1, c)), (1, 1),
                                     "VALID", dimension_numbers=dn, feature_group_count=c)
  return x


def _batch(rng):
  batch = {k: rng.integers(0, 255, (16, 64, 64, 3), np.uint8) for k in ("a", "b")}
  for k in ("a", "b"):
    batch[f"{k}_landmarks"] = rng.uniform(-0.5, 0.5, (16, 68, 2)).astype(np.float32)
    batch[f"{k}_has_landmarks"] = np.ones((16,), bool)
  return batch


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  p.add_argument("--rounds", type=int, default=2)
  args = p.parse_args()
  c = load_config("faceswap_ae", "tiny")
  with c.unlocked():
    c.loss.ssim = 1.0
  rng = np.random.default_rng(0)
  batch = _batch(rng)
  x, y = (jnp.asarray(rng.uniform(size=(16, 64, 64, 3)), jnp.float32) for _ in range(2))
  shifted = losses._filter_separable  # pylint: disable=protected-access
  for rnd in range(args.rounds):
    for name, fn in (("depthwise conv", depthwise_conv), ("shifted slices", shifted)):
      losses._filter_separable = fn  # pylint: disable=protected-access
      jax.clear_caches()  # ssim_map is jitted: trace it again with this filter
      grad = jax.jit(jax.grad(lambda a: losses.dssim(a, y)))  # noqa: B023
      grad(x).block_until_ready()
      t = time.perf_counter()
      for _ in range(20):
        grad(x).block_until_ready()
      t_grad = (time.perf_counter() - t) / 20
      task = build_task(c)
      state = jax.jit(task.init)(jax.random.key(0), batch)
      step = jax.jit(task.train_step)
      state, m = step(state, batch)
      jax.block_until_ready(m)
      t = time.perf_counter()
      for _ in range(10):
        state, m = step(state, batch)
      jax.block_until_ready(m)
      print(f"round {rnd} {name:<15} SSIM-loss gradient {t_grad * 1e3:6.1f} ms   "
            f"faceswap_ae:tiny step with loss.ssim=1 {(time.perf_counter() - t) / 10 * 1e3:6.1f} ms",
            flush=True)
  losses._filter_separable = shifted  # pylint: disable=protected-access


if __name__ == "__main__":
  main()
