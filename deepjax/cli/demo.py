"""deepjax demo [--workdir=deepjax_demo] [--steps=N]

The embedded default: trains the tiny face-swap config on two synthetic
identities (minutes on a 2-core CPU), then writes into the workdir
- preview.png: A, A->A, A->B, B, B->B, B->A on training faces,
- swap_a2b.mp4: a held-out synthetic clip of A | swapped to B | exact ground truth,
- metrics.json: swap PSNR/SSIM/L1 against the exact ground truth, next to two
  baselines (the input unchanged; B's mean face), printed as a table.
Rerunning resumes from the checkpoint in the workdir (no retraining).
"""
import json
import os
import time

from absl import flags

from deepjax.cli import program
from deepjax.cli.provenance_flags import provenance_for

_WORKDIR = flags.DEFINE_string("workdir", "deepjax_demo", "Output folder.")
_STEPS = flags.DEFINE_integer("steps", None, "Training steps (default: the tiny config's).")
_CONFIG_ARG = flags.DEFINE_string("config_arg", "tiny", "Argument of configs/faceswap_ae.py.")
_FRAMES = flags.DEFINE_integer("frames", 64, "Frames in the held-out clip.")


def demo_config(arg: str, steps):
  """The faceswap_ae config (shipped inside the package), with optional steps."""
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  config = load_config("faceswap_ae", arg)
  if steps is not None:
    with config.unlocked():
      config.num_steps = steps
  return config


def side_by_side(*clips, scale: int = 3):
  """Float (T,S,S,3) clips -> uint8 (T, S*scale, n*S*scale, 3), nearest upscale."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  row = np.concatenate([np.clip(c, 0, 1) for c in clips], axis=2)
  row = row.repeat(scale, axis=1).repeat(scale, axis=2)
  return (row * 255 + 0.5).astype(np.uint8)


def main(argv):
  program.check_args(argv)
  from deepjax.eval import swap_synthetic as swap_eval  # pylint: disable=import-outside-toplevel
  from deepjax.data import video  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  from deepjax.loading import load_params  # pylint: disable=import-outside-toplevel
  from deepjax.train import loop  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks import build_task  # pylint: disable=import-outside-toplevel

  workdir = os.path.abspath(_WORKDIR.value)
  config = demo_config(_CONFIG_ARG.value, _STEPS.value)
  print(f"deepjax demo: training '{config.task}' ({_CONFIG_ARG.value}) on synthetic identities "
        f"{config.data.identity_a} (A) and {config.data.identity_b} (B) for {config.num_steps} "
        f"steps in {workdir}", flush=True)
  t0 = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  train_s = time.perf_counter() - t0

  task = build_task(config)
  params = load_params(workdir)
  swap_fn = swap_eval.jit_swap(task, params)
  results = {}
  means = swap_eval.mean_face(config.data)
  for motion in swap_eval.MOTIONS:
    results[motion], clip, outputs = swap_eval.evaluate_swap(swap_fn, config.data, _FRAMES.value,
                                                             motion=motion, means=means)
    if motion == "clip":
      frames = side_by_side(clip["a"], outputs["a2b"], clip["b"])
      from deepjax.provenance import credentials  # pylint: disable=import-outside-toplevel
      prov = provenance_for(workdir, credentials.COMPOSITE)
      path = os.path.join(workdir, "swap_a2b.mp4")
      video.write_video(path, prov.mark_frames(frames), fps=25)
      prov.sign(path, size=frames.shape[2:0:-1])
  summary = {"config": _CONFIG_ARG.value, "steps": int(config.num_steps),
             "train_seconds": round(train_s, 1), "results": results}
  write_text_atomic(os.path.join(workdir, "metrics.json"), json.dumps(summary, indent=2))
  for motion, title in (("poses", "held-out frames, poses and expressions over the training "
                                  "range"),
                        ("clip", "held-out talking clip (small motion)")):
    print(f"\nswap quality vs exact ground truth, {title}:")
    print(swap_eval.format_table(results[motion]))
  a2b = results["poses"]["a2b"]
  beats = all(a2b["model"]["psnr"] > a2b[b]["psnr"] and a2b["model"]["ssim"] > a2b[b]["ssim"]
              for b in ("input", "mean_face"))
  print(f"\nmodel beats both baselines on held-out poses (A->B, PSNR and SSIM): "
        f"{'yes' if beats else 'NO'}")
  print(f"wrote {workdir}/preview.png, {workdir}/swap_a2b.mp4 (A | A->B | ground truth), "
        f"{workdir}/metrics.json; training took {train_s:.0f} s")


def run(argv=None):
  program.run(main, argv)
