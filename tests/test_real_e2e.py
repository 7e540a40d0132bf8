"""End to end on real footage: extract two clips -> train the tiny swap model -> swap a video.

The same programs and flags as README's "Real footage" section (docs/real_footage.md),
at test sizes: 40 crops per clip, 30 training steps, a 20-frame clip with audio.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from deepjax.data import video
from deepjax.faces import detect
from deepjax.faces import mask as mask_lib

pytestmark = [pytest.mark.filterwarnings("ignore:os.fork"), pytest.mark.real_data,
              pytest.mark.slow]


def _run(module, *args, timeout=600):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        env=env, timeout=timeout)
  assert proc.returncode == 0, f"{module} failed:\n{proc.stderr[-3000:]}"
  return proc


def test_extract_train_swap_two_real_clips(shared_data, tmp_path):
  videos = os.path.join(shared_data, "videos")
  clip_a, clip_b = os.path.join(videos, "lp_d18.mp4"), os.path.join(videos, "lp_d19.mp4")
  faces_a, faces_b, run = tmp_path / "faces_a", tmp_path / "faces_b", tmp_path / "run"
  for src, out in ((clip_a, faces_a), (clip_b, faces_b)):
    _run("deepjax", "extract", f"--input={src}", f"--output={out}", "--size=64",
         "--max_frames=80", "--every_n_frames=2")
    assert len([n for n in os.listdir(out) if n.endswith(".png")]) >= 36  # ~40 sampled
  _run("deepjax", "train", "--config=configs/faceswap_ae.py:tiny", f"--workdir={run}",
       "--config.data.source=folders", f"--config.data.a={faces_a}",
       f"--config.data.b={faces_b}", "--config.num_steps=30", "--config.batch_size=8",
       f"--config.data.data_dir={tmp_path / 'datasets'}")
  # the video to swap: the first 20 frames of B's clip, with its audio
  frames, fps, _ = video.read_video(clip_b, max_frames=20)
  clip = str(tmp_path / "b20.mp4")
  video.write_video(clip, frames, fps, audio_from=clip_b)
  out = tmp_path / "swapped" / "b_as_a.mp4"
  proc = _run("deepjax", "swap", f"--workdir={run}", f"--video={clip}", f"--output={out}",
              "--direction=b2a", "--color=mean_std", "--blend=alpha",
              # the pixel watermark changes every pixel a little; this test checks that only
              # the face is replaced, so the manifest is the only mark here.
              "--provenance=c2pa")
  assert "swapped 20/20 frames" in proc.stdout
  assert f"coverage 0.75, centering face ({faces_a / 'alignments.json'})" in proc.stderr
  src, dst = video.probe_video(clip), video.probe_video(str(out))
  assert (dst.num_frames, dst.fps, dst.width, dst.height) == \
      (src.num_frames, src.fps, src.width, src.height) == (20, 30.0, 480, 480)
  assert src.has_audio and dst.has_audio
  swapped, _, _ = video.read_video(str(out))
  lm = detect.detect_faces(frames[0], "dlib")[0].landmarks
  hull = mask_lib.landmark_mask(lm, frames.shape[1:3], forehead=0.2)
  diff = np.abs(swapped.astype(float) - frames.astype(float)).mean(-1)
  assert diff[0][mask_lib.grow_mask(hull, -10) > 0.5].mean() > 3  # the face was replaced
  assert diff[0][mask_lib.grow_mask(hull, 40) < 0.5].mean() < 3  # the rest is the input
