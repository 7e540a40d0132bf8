"""Video swap speed, and a randomly initialised swap run for benchmarks and tests.

`random_swap_run(workdir)` writes a checkpoint of an *untrained* swap model in the
layout `deepjax.train` writes (`checkpoints/<step>/{state,config}`), so `Swapper`
and `deepjax swap` load it like a trained run: the full video path
(detection, crop, batched model call, paste back, encode) can be timed and tested
without training first.
"""
from __future__ import annotations

import os
import tempfile
import time

from deepjax.errors import UserError
from deepjax.bench.extract import DEFAULT_CLIP


def random_swap_run(workdir: str, arg: str = "tiny", seed: int = 0, data: dict | None = None
                    ) -> str:
  """Saves a randomly initialised `configs/faceswap_ae.py:<arg>` model under `workdir`.

  Args:
    workdir: run folder to create (its `checkpoints/0` is written).
    arg: config argument ("tiny", "seeds", "original", ...).
    seed: init seed.
    data: optional overrides of `config.data` (e.g. {"source": "folders", "a": ...}).
  Returns:
    `workdir`.
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from deepjax import loading  # pylint: disable=import-outside-toplevel
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  from deepjax.train import checkpoint  # pylint: disable=import-outside-toplevel
  config = load_config("faceswap_ae", arg)
  if data:
    with config.unlocked():
      for k, v in data.items():
        config.data[k] = v
  model = loading.build_model(config)
  size = int(config.data.size)
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  params = model.init(jax.random.key(seed), x, method=model.init_all)["params"]
  state = {"step": np.zeros((), np.int32), "params": jax.tree.map(np.asarray, params)}
  manager = checkpoint.make_manager(workdir, max_to_keep=1)
  checkpoint.save(manager, 0, state, {}, config)
  manager.close()
  return workdir


def bench_swap_video(video_path: str | None = None, max_frames: int = 100, batch: int = 16,
                     color: str = "mean_std", blend: str = "alpha") -> dict:
  """Frames per second of the whole video swap on the first `max_frames` frames.

  Uses a randomly initialised `faceswap_ae:tiny` model (64 px; the model's weights
  do not change its cost). `video_path` defaults to the shared 512 px clip
  `lp_d11.mp4`. Timed: decoding, detection + landmarks, alignment and crop, the
  batched model call, colour matching, blending, paste back and H.264 encoding
  with the audio copied; not timed: writing the checkpoint, loading the model and
  the detector, and one warm-up chunk (model compilation).
  Returns {"row", "clip", "frames", "with_face", "seconds", "frames_per_s",
  "cpu_seconds" (this process's CPU time, all its threads; the ffmpeg encoder and
  decoder processes not included), "width", "height", "batch", "color", "blend"}.
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
  return {"row": "swap video 512px", "clip": os.path.basename(video_path),
          "frames": out["frames"], "with_face": out["with_face"], "seconds": out["seconds"],
          "frames_per_s": out["frames_per_s"], "cpu_seconds": round(cpu, 2),
          "width": out["width"], "height": out["height"], "batch": batch, "color": color,
          "blend": blend}


if __name__ == "__main__":
  t = time.perf_counter()
  print(bench_swap_video(), f"({time.perf_counter() - t:.1f} s in all)")
