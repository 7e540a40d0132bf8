"""The cost of provenance marks on a written video (row `provenance` of `deepjax bench`).

Same process, same frames: `write_video` alone vs watermark (`Provenance.mark_frames`) +
`write_video` + C2PA signing (`Provenance.sign`, with the signing pair the programs use).
"""
import os
import tempfile
from typing import Optional

import numpy as np

from deepjax.bench.timing import Result, time_calls


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


def provenance_row(frames: int = 32, size: int = 512, video: Optional[str] = None,
                   repeats: int = 3) -> Result:
  """Best-of-`repeats` seconds to write `frames` frames without and with both marks.

  step_s / images_per_s: the watermark alone (one batched call of all frames, median);
  extra: write_s, mark_write_sign_s and overhead_vs_write (their ratio - 1).
  """
  from deepjax.data.video import write_video  # pylint: disable=import-outside-toplevel
  from deepjax.provenance import Provenance, credentials  # pylint: disable=import-outside-toplevel
  clip = _frames(video, frames, size)
  prov = Provenance(credentials.COMPOSITE, "bench", "0" * 64)
  with tempfile.TemporaryDirectory() as folder:
    plain, marked = os.path.join(folder, "plain.mp4"), os.path.join(folder, "marked.mp4")

    def with_marks():
      write_video(marked, prov.mark_frames(clip), 25)
      prov.sign(marked, size=clip.shape[2:0:-1])

    write = time_calls(lambda: write_video(plain, clip, 25), repeats=repeats)
    both = time_calls(with_marks, repeats=repeats)
  mark = time_calls(prov.mark_frames, clip, repeats=repeats)
  overhead = both.best / write.best - 1
  return Result(batch=len(clip), compile_s=mark.warmup_seconds[0], step_s=mark.median,
                images_per_s=len(clip) / mark.median,
                note=f"watermark of {clip.shape[2]}x{clip.shape[1]} frames; write "
                     f"{write.best:.2f} s, watermark + write + sign {both.best:.2f} s "
                     f"(+{100 * overhead:.0f}%)",
                extra={"write_s": write.best, "mark_write_sign_s": both.best,
                       "overhead_vs_write": overhead})
