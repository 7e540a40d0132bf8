"""Benchmark row for `deepjax bench`: the cost of provenance marks on a written video.

Same process, same frames: `write_video` alone vs watermark (`Provenance.mark_frames`) +
`write_video` + C2PA signing (`Provenance.sign`, with the signing pair the programs use),
best of `repeats` after a warm-up.
"""
import os
import tempfile
import time
from typing import Optional

import numpy as np


def _frames(video: Optional[str], n: int, size: int) -> np.ndarray:
  """uint8 (n, size, size, 3): the first frames of `video`, or a smooth moving pattern."""
  if video:
    from deepjax.data.video import read_video  # pylint: disable=import-outside-toplevel
    return read_video(video, max_frames=n)[0]
  yy, xx = np.mgrid[0:size, 0:size] / size
  t = np.arange(n)[:, None, None, None] / n
  rgb = np.array([1.0, 2.0, 3.0])
  pattern = 0.5 + 0.4 * np.sin(2 * np.pi * (3 * xx[..., None] * rgb + 2 * yy[..., None] + t))
  return (pattern * 255).astype(np.uint8)


def bench(frames: int = 32, size: int = 512, video: Optional[str] = None,
          repeats: int = 3) -> dict:
  """Row: seconds to write `frames` frames with and without both marks, and the overhead.

  step_s / images_per_s: the watermark alone (one batched call of all frames).
  """
  from deepjax.data.video import write_video  # pylint: disable=import-outside-toplevel
  from deepjax.provenance import Provenance, credentials  # pylint: disable=import-outside-toplevel
  clip = _frames(video, frames, size)
  with tempfile.TemporaryDirectory() as folder:
    prov = Provenance(credentials.COMPOSITE, "bench", "0" * 64)
    plain, marked = os.path.join(folder, "plain.mp4"), os.path.join(folder, "marked.mp4")

    def with_marks():
      write_video(marked, prov.mark_frames(clip), 25)
      prov.sign(marked, size=clip.shape[2:0:-1])

    best = {}
    for key, fn in (("write_s", lambda: write_video(plain, clip, 25)),
                    ("mark_write_sign_s", with_marks)):
      fn()  # warm-up (jit compile, certificate)
      times = []
      for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
      best[key] = min(times)
  t0 = time.perf_counter()
  prov.mark_frames(clip)
  mark_s = time.perf_counter() - t0
  overhead = best["mark_write_sign_s"] / best["write_s"] - 1
  return {"row": f"provenance {clip.shape[2]}x{clip.shape[1]}", "frames": len(clip),
          "batch": len(clip), "step_s": mark_s, "images_per_s": len(clip) / mark_s,
          "write_s": best["write_s"], "mark_write_sign_s": best["mark_write_sign_s"],
          "mark_ms_per_frame": 1000 * mark_s / len(clip), "overhead_vs_write": overhead,
          "note": f"write {best['write_s']:.2f} s, watermark + write + sign "
                  f"{best['mark_write_sign_s']:.2f} s (+{100 * overhead:.0f}%)"}
