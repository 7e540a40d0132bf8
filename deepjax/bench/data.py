"""Benchmarks of the data layer (rows `data_swap`, `data_video` of `deepjax bench`).

Each function builds its own inputs in a temporary folder (random images, a
synthetic clip) and times the library functions on them.
"""
import os
import tempfile
import time

import numpy as np

from deepjax.bench.timing import Result, time_calls
from deepjax.data import video


def _random_faces(folder: str, n: int, side: int, seed: int) -> None:
  rng = np.random.default_rng(seed)
  os.makedirs(folder)
  y, x = np.mgrid[0:side, 0:side] / side
  for i in range(n):
    base = np.stack([x, y, np.full_like(x, i / n)], -1) * 255
    img = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    video.write_image(os.path.join(folder, f"{i:05d}.jpg"), img)


def swap_pipeline_row(size: int = 64, batch: int = 32, images: int = 256,
                      source_side: int = 256, steps: int = 30, worker_count: int = 0) -> Result:
  """Prepares two face folders of JPEGs (`source_side` px) and times `swap_iterator`.

  Reports preparation speed (images/s, decode + resize + PNG encode + write) in
  the note and the iterator's median seconds per batch (after one warm-up batch: threads,
  first reads); images_per_s counts A and B images.
  """
  from deepjax.data import pipeline  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    for side, seed in (("A", 0), ("B", 1)):
      _random_faces(os.path.join(tmp, side), images, source_side, seed)
    cfg = {"source": "folders", "size": size, "a": os.path.join(tmp, "A"),
           "b": os.path.join(tmp, "B"), "test_fraction": 0.0,
           "data_dir": os.path.join(tmp, "data"), "worker_count": worker_count,
           "shuffle": True}
    t0 = time.perf_counter()
    pipeline.identity_builders(cfg, multihost=False)
    prepare_s = time.perf_counter() - t0
    it = pipeline.swap_iterator(cfg, batch, seed=0, shard_by_process=False)
    t = time_calls(next, it, repeats=steps, warmup=1)
  return Result(batch=batch, step_s=t.median, images_per_s=2 * batch / t.median,
                note=f"swap_iterator {size}px w{worker_count}; prepare "
                     f"{2 * images / prepare_s:.0f} img/s ({source_side}px jpg -> {size}px png)",
                extra={"mean_s": t.mean, "prepare_s": prepare_s})


def video_io_row(width: int = 512, height: int = 512, frames: int = 60) -> Result:
  """Encodes then decodes a synthetic H.264 clip; images_per_s is the decode frames/s."""
  y, x = np.mgrid[0:height, 0:width]
  clip = np.stack([np.stack([(x + 4 * t) % 256, (y + 2 * t) % 256,
                             np.full_like(x, 3 * t % 256)], -1).astype(np.uint8)
                   for t in range(frames)])
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "clip.mp4")
    t0 = time.perf_counter()
    video.write_video(path, clip, fps=25)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(1 for _ in video.iter_video(path))
    decode_s = time.perf_counter() - t0
  return Result(images_per_s=n / decode_s,
                note=f"decode {width}x{height} frames/s; encode {frames / encode_s:.0f} "
                     "frames/s (libx264 crf 15)",
                extra={"decode_s": decode_s, "encode_s": encode_s, "frames": n})
