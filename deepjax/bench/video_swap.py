"""Video swap speed (row `swap_video` of `deepjax bench`): `deepjax swap --video`'s
`infer.video_swap.swap_video` with an untrained model (`deepjax.testing.random_swap_run`)."""
from __future__ import annotations

import os
import tempfile
import time

from deepjax.bench.extract import DEFAULT_CLIP
from deepjax.bench.timing import Result
from deepjax.errors import UserError
from deepjax.testing import random_swap_run


def swap_video_row(video_path: str | None = None, max_frames: int = 100, batch: int = 16,
                   color: str = "mean_std", blend: str = "alpha") -> Result:
  """Frames per second of the whole video swap on the first `max_frames` frames.

  Uses a randomly initialised `faceswap_ae:tiny` model (64 px; the model's weights
  do not change its cost). `video_path` defaults to the shared 512 px clip
  `lp_d11.mp4`. Timed: decoding, detection + landmarks, alignment and crop, the
  batched model call, colour matching, blending, paste back and H.264 encoding
  with the audio copied; not timed: writing the checkpoint, loading the model and
  the detector, and one warm-up chunk (model compilation).
  images_per_s is frames/s; `extra["cpu_seconds"]` is this process's CPU time (all its
  threads; the ffmpeg encoder and decoder processes not included).
  """
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.faces import detect  # pylint: disable=import-outside-toplevel
  from deepjax.infer import video_swap  # pylint: disable=import-outside-toplevel
  from deepjax.infer.swap import Swapper  # pylint: disable=import-outside-toplevel
  video_path = video_path or DEFAULT_CLIP
  if not os.path.isfile(video_path):
    raise UserError(f"benchmark clip not found: {video_path}")
  with tempfile.TemporaryDirectory(prefix="swap_bench_") as tmp:
    swapper = Swapper(random_swap_run(os.path.join(tmp, "run")), batch)
    opts = video_swap.SwapOptions(batch=batch, color=color, blend=blend, detector="dlib",
                                  max_frames=max_frames)
    first = next(video.iter_video(video_path, chunk=batch))  # warm-up: compile, load models
    detect.detect_faces(first[0], "dlib")
    locate = video_swap.FaceLocator("dlib")
    video_swap.swap_chunk(first, locate, swapper, opts, 0.75, "face")
    cpu = time.process_time()
    out = video_swap.swap_video(swapper, video_path, os.path.join(tmp, "out.mp4"), opts,
                                progress=False, log=lambda m: None)
    cpu = time.process_time() - cpu
  return Result(batch=batch, images_per_s=out["frames_per_s"],
                note=f"swap video {os.path.basename(video_path)} ({out['width']}x"
                     f"{out['height']}, {out['frames']} frames, {out['with_face']} with a face)",
                extra={"frames": out["frames"], "with_face": out["with_face"],
                       "seconds": out["seconds"], "cpu_seconds": round(cpu, 2),
                       "width": out["width"], "height": out["height"], "color": color,
                       "blend": blend})
