"""Video face swap (`deepjax.infer.video_swap`, `deepjax swap --video`).

Crop -> swap -> paste back is checked with stand-in swappers (identity, colour
inversion) against the frame itself and against a landmark hull drawn directly in
frame space; the program is run on a real clip with a randomly initialised model
(frame count, fps, size and audio kept); bad inputs give one line, exit 2 and no
output file.
"""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from deepjax.data import video
from deepjax.errors import UserError
from deepjax.faces import detect
from deepjax.faces import mask as mask_lib
from deepjax.infer import video_swap
from deepjax.testing import random_swap_run

pytestmark = [pytest.mark.filterwarnings("ignore:os.fork"), pytest.mark.real_data]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEOS = os.path.join(os.path.dirname(REPO), "shared", "data", "videos")


class FakeSwapper:
  """Swapper stand-in: `fn(faces)` as the swap; a constant mask; records call shapes."""

  def __init__(self, size, fn=lambda x: x, mask_value=1.0, learned=False):
    self.size, self.fn, self.mask_value = size, fn, mask_value
    self.config = {"model": {"mask": learned}, "data": {}}
    self.calls = []

  def __call__(self, faces, direction="a2b"):
    self.calls.append((faces.shape, direction))
    return self.fn(faces), np.full(faces.shape[:-1] + (1,), self.mask_value, np.float32)


def _need_videos():
  if not os.path.isdir(VIDEOS):
    pytest.skip(f"real footage not found at {VIDEOS}")


@pytest.fixture(scope="module")
def frames512():
  """First 3 frames of the 512 px clip lp_d11, uint8 (3, 512, 512, 3)."""
  _need_videos()
  frames, _, _ = video.read_video(os.path.join(VIDEOS, "lp_d11.mp4"), max_frames=3)
  return frames


@pytest.fixture(scope="module")
def rand_run(tmp_path_factory):
  """A randomly initialised tiny swap model (64 px) in a run folder."""
  return random_swap_run(str(tmp_path_factory.mktemp("swaprun") / "run"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
  """12 frames of lp_d18 (480x480, 30 fps) with its audio."""
  _need_videos()
  src = os.path.join(VIDEOS, "lp_d18.mp4")
  frames, fps, _ = video.read_video(src, max_frames=12)
  path = str(tmp_path_factory.mktemp("clip") / "short.mp4")
  video.write_video(path, frames, fps, audio_from=src)
  return path


def _main_landmarks(frame):
  faces = detect.detect_faces(frame, "dlib")
  assert faces, "the test clip should show a face"
  return np.asarray(faces[0].landmarks, np.float64)


def test_identity_swap_reproduces_frames(frames512):
  # A swap that returns its input must give back (nearly) the same frames: the crop is
  # cut with the alignment matrix and pasted back with its inverse.
  sw = FakeSwapper(384)
  opts = video_swap.SwapOptions(color="none", blend="alpha", batch=4)
  locate = video_swap.FaceLocator("dlib")
  out, hits = video_swap.swap_chunk(frames512, locate, sw, opts, 0.75, "face")
  assert hits == 3 and len(out) == 3
  assert sw.calls == [((4, 384, 384, 3), "a2b")]  # one padded call for the whole chunk
  for f, o in zip(frames512, out):
    assert o.dtype == np.uint8 and o.shape == f.shape
    hull = mask_lib.landmark_mask(_main_landmarks(f), f.shape[:2], forehead=0.2) > 0.5
    err = np.abs(o.astype(np.float64) - f.astype(np.float64))
    assert err[hull].mean() < 2.0, err[hull].mean()
    mse = (err[hull] ** 2).mean()
    assert 10 * np.log10(255.0 ** 2 / max(mse, 1e-12)) > 32.0


def test_pasted_face_lands_on_the_face(frames512):
  # Inverted colours, sharp mask: the change must cover the landmark hull drawn directly
  # in frame space (independent of the crop transform) and nothing far outside it.
  sw = FakeSwapper(128, fn=lambda x: 1.0 - x)
  opts = video_swap.SwapOptions(color="none", blend="alpha", erode=1.0, blur=0.5)
  frame = frames512[:1]
  out, _ = video_swap.swap_chunk(frame, video_swap.FaceLocator("dlib"), sw, opts, 0.75, "face")
  f, o = frame[0].astype(np.float64), out[0].astype(np.float64)
  hull = mask_lib.landmark_mask(_main_landmarks(frame[0]), f.shape[:2], forehead=0.2)
  inner = mask_lib.grow_mask(hull, -12) > 0.5
  outer = mask_lib.grow_mask(hull, 12) > 0.5
  expected = np.abs(255.0 - 2.0 * f)  # |inverted - original|
  changed = np.abs(o - f)
  assert np.median(changed[inner] / np.maximum(expected[inner], 1.0)) > 0.9
  assert changed[~outer].max() <= 1.0
  assert (changed.max(-1) > 30)[hull > 0.5].mean() > 0.5


def test_no_face_frames_pass_through_unchanged(frames512):
  black = np.zeros_like(frames512[:2])
  grey = np.full_like(frames512[:1], 128)
  chunk = np.concatenate([frames512[:1], black, frames512[1:2], grey])
  sw = FakeSwapper(64, fn=lambda x: 1.0 - x)
  opts = video_swap.SwapOptions(color="mean_std", batch=3)
  stats = {}
  seen = []
  out = list(video_swap.swap_frames([chunk[:3], chunk[3:]], sw, opts,
                                    video_swap.FaceLocator("dlib"), 0.75, "face",
                                    stats=stats, progress=seen.append))
  assert len(out) == 5 and stats == {"frames": 5, "with_face": 2} and seen == [3, 2]
  for i in (1, 2, 4):
    np.testing.assert_array_equal(out[i], chunk[i])
  for i in (0, 3):
    assert np.abs(out[i].astype(int) - chunk[i]).max() > 50
  # batches are padded to the batch size: one compiled shape
  assert [c[0][0] for c in sw.calls] == [3, 3]


def test_learned_mask_replaces_the_landmark_mask(frames512):
  frame = frames512[:1]
  opts = video_swap.SwapOptions(color="none")
  zero = FakeSwapper(64, fn=lambda x: 1.0 - x, mask_value=0.0)
  stats = {}
  out, hits = video_swap.swap_chunk(frame, video_swap.FaceLocator("dlib"), zero, opts, 0.75,
                                    "face", learned_mask=True, stats=stats)
  assert hits == 1
  np.testing.assert_array_equal(out[0], frame[0])  # an empty learned mask pastes nothing
  assert stats == {"faces": 1, "empty_masks": 1}  # and is counted (swap_video warns of it)
  one = FakeSwapper(64, fn=lambda x: 1.0 - x, mask_value=1.0)
  stats = {}
  learned, _ = video_swap.swap_chunk(frame, video_swap.FaceLocator("dlib"), one, opts, 0.75,
                                     "face", learned_mask=True, stats=stats)
  assert stats == {"faces": 1, "empty_masks": 0}
  hull, _ = video_swap.swap_chunk(frame, video_swap.FaceLocator("dlib"), one, opts, 0.75,
                                  "face", learned_mask=False)
  # a full-crop mask changes more of the frame than the face hull does
  n_learned = (np.abs(learned[0].astype(int) - frame[0]).max(-1) > 30).sum()
  n_hull = (np.abs(hull[0].astype(int) - frame[0]).max(-1) > 30).sum()
  assert n_learned > 1.3 * n_hull > 0


def test_all_faces_swaps_every_face(frames512):
  two = np.concatenate([frames512[0], frames512[1]], 1)[None]  # (1, 512, 1024, 3): two people
  inv = lambda x: 1.0 - x  # noqa: E731
  opts = video_swap.SwapOptions(color="none", faces="all")
  out, _ = video_swap.swap_chunk(two, video_swap.FaceLocator("dlib", faces="all"),
                                 FakeSwapper(64, inv), opts, 0.75, "face")
  main, _ = video_swap.swap_chunk(two, video_swap.FaceLocator("dlib"), FakeSwapper(64, inv),
                                  dataclasses.replace(opts, faces="main"), 0.75, "face")
  changed = lambda o: (np.abs(o.astype(int) - two[0]).max(-1) > 30)  # noqa: E731
  halves = lambda c: (c[:, :512].sum(), c[:, 512:].sum())  # noqa: E731
  left, right = halves(changed(out[0]))
  assert left > 5000 and right > 5000
  ml, mr = halves(changed(main[0]))
  assert min(ml, mr) == 0 and max(ml, mr) > 5000  # main face only


def test_smoothing_damps_landmark_jitter(frames512):
  # The same frame shifted +-3 px in turn: raw landmarks jump 6 px every frame; the
  # 1-euro filter must shrink that jump.
  frames = [np.roll(frames512[0], 3 if i % 2 else -3, axis=1) for i in range(10)]
  raw = video_swap.FaceLocator("dlib", smooth=0, fps=25.0)
  smooth = video_swap.FaceLocator("dlib", smooth=8, fps=25.0)
  xr = np.array([raw(f)[0][:, 0].mean() for f in frames])
  xs = np.array([smooth(f)[0][:, 0].mean() for f in frames])
  assert np.abs(np.diff(xr[4:])).mean() > 4.0
  assert np.abs(np.diff(xs[4:])).mean() < 0.5 * np.abs(np.diff(xr[4:])).mean()


def test_training_crop_settings(tmp_path):
  import json
  folder = tmp_path / "a"
  folder.mkdir()
  (folder / "alignments.json").write_text(json.dumps(
      {"settings": {"coverage": 0.6, "centering": "head"}, "faces": []}))
  cfg = {"data": {"source": "folders", "a": str(folder), "b": ""}}
  assert video_swap.training_crop_settings(cfg)[:2] == (0.6, "head")
  cfg["data"]["a"] = str(tmp_path / "gone")
  assert video_swap.training_crop_settings(cfg)[:2] == (0.75, "face")
  assert video_swap.training_crop_settings({"data": {"source": "synthetic"}})[:2] == (0.75, "face")


def _probe(path):
  return video.probe_video(path)


@pytest.mark.slow  # a fresh process (JAX start-up, model load): ~10 s idle, much more when busy
def test_cli_video_keeps_frames_fps_size_audio(rand_run, clip, tmp_path):
  out = tmp_path / "new" / "folder" / "swapped.mp4"  # missing folders are created
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "deepjax", "swap", f"--workdir={rand_run}",
                         f"--video={clip}", f"--output={out}", "--direction=b2a", "--batch=8",
                         "--detector=dlib"], capture_output=True, text=True, env=env,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "swapped 12/12 frames" in proc.stdout
  src, dst = _probe(clip), _probe(str(out))
  assert (dst.num_frames, dst.fps, dst.width, dst.height) == \
      (src.num_frames, src.fps, src.width, src.height) == (12, 30.0, 480, 480)
  assert src.has_audio and dst.has_audio
  a, _, _ = video.read_video(clip)
  b, _, _ = video.read_video(str(out))
  hull = mask_lib.landmark_mask(_main_landmarks(a[0]), a.shape[1:3], forehead=0.2)
  inner = mask_lib.grow_mask(hull, -10) > 0.5
  diff = np.abs(a.astype(float) - b.astype(float)).mean(-1)
  assert diff[0][inner].mean() > 10  # the face was replaced (random model: a blur)
  assert diff[0][mask_lib.grow_mask(hull, 40) < 0.5].mean() < 3  # the rest re-encoded only
  assert os.listdir(out.parent) == ["swapped.mp4"]  # no temporary files left
  from deepjax.provenance.verify import verify_file
  marks = verify_file(str(out))  # both provenance marks, by default
  assert marks["c2pa"]["valid"] and marks["watermark"]["found"], marks
  assert marks["c2pa"]["digital_source_type"] == "compositeWithTrainedAlgorithmicMedia"


def test_seamless_histogram_in_process(rand_run, clip, tmp_path):
  out = tmp_path / "s.mp4"
  lines = []
  res = video_swap.swap_video_from_run(
      rand_run, clip, str(out), video_swap.SwapOptions(color="histogram", blend="seamless",
                                                       smooth=3, max_frames=4, batch=4),
      log=lines.append)
  info = _probe(str(out))
  assert res["frames"] == 4 == info.num_frames and res["with_face"] == 4
  assert (info.fps, info.width, info.height, info.has_audio) == (30.0, 480, 480, True)
  assert len(lines) == 1 and lines[0].startswith("detector: ")  # the summary is the program's


def test_video_swap_warns_once_when_the_learned_mask_is_empty(clip, tmp_path):
  """A model whose mask collapsed pastes nothing back: the video is written (it is what was
  asked for) and one log line says on how many faces."""
  lines = []
  empty = FakeSwapper(64, fn=lambda x: 1.0 - x, mask_value=0.0, learned=True)
  res = video_swap.swap_video(empty, clip, str(tmp_path / "e.mp4"),
                              video_swap.SwapOptions(color="none", max_frames=3, batch=2),
                              progress=False, log=lines.append)
  assert res["with_face"] == 3 and res["empty_masks"] == 3
  warnings = [line for line in lines if "mask is empty" in line]
  assert warnings == [lines[-1]] and "on 3 of 3 faces" in warnings[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, rand_run):
  d = tmp_path_factory.mktemp("bad")
  (d / "empty.mp4").write_bytes(b"")
  (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
  import imageio_ffmpeg
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                  "sine=frequency=440:duration=1", "-c:a", "aac", str(d / "audio_only.mp4")],
                 check=True, timeout=60)
  video.write_video(str(d / "black.mp4"), np.zeros((6, 64, 64, 3), np.uint8), 25.0)
  (d / "emptyrun").mkdir()
  (d / "afile").write_text("x")
  # a workdir holding a first-order-motion run (only its config matters here)
  from deepjax.configs_lib import load_config
  from deepjax.train import checkpoint
  manager = checkpoint.make_manager(str(d / "motionrun"))
  checkpoint.save(manager, 0, {"params": {"w": np.zeros(3, np.float32)}}, {},
                  load_config("fomm_vox256", "tiny"))
  manager.close()
  return d


@pytest.mark.parametrize("case,pattern", [
    ("missing_video", "not found"),
    ("empty_video", "empty"),
    ("corrupt_video", "not a readable video"),
    ("audio_only", "not a readable video"),
    ("no_face", "no face found"),
    ("missing_workdir", "not found"),
    ("empty_workdir", "no deepjax checkpoint"),
    ("motion_workdir", "not a face-swap model"),
    ("output_in_a_file", "is a file"),
    ("output_not_mp4", "must end in"),
    ("output_is_input", "overwrite the input"),
    ("bad_option", "blend mode must be one of"),
])
def test_bad_inputs_raise_and_leave_no_output(bad_inputs, rand_run, clip, case, pattern):
  d = bad_inputs
  out = d / "outs" / f"{case}.mp4"
  args = {"workdir": rand_run, "video": clip, "output": str(out)}
  opts = video_swap.SwapOptions()
  if case == "missing_video":
    args["video"] = str(d / "nope.mp4")
  elif case in ("empty_video", "corrupt_video", "audio_only"):
    args["video"] = str(d / (case.replace("_video", "") + ".mp4"))
  elif case == "no_face":
    args["video"] = str(d / "black.mp4")
  elif case == "missing_workdir":
    args["workdir"] = str(d / "norun")
  elif case == "empty_workdir":
    args["workdir"] = str(d / "emptyrun")
  elif case == "motion_workdir":
    args["workdir"] = str(d / "motionrun")
  elif case == "output_in_a_file":
    args["output"] = str(d / "afile" / "x.mp4")
  elif case == "output_not_mp4":
    args["output"] = str(d / "outs" / "x.avi")
  elif case == "output_is_input":
    args["output"] = clip
  elif case == "bad_option":
    opts = video_swap.SwapOptions(blend="poisson")
  with pytest.raises(UserError, match=pattern) as e:
    video_swap.swap_video_from_run(args["workdir"], args["video"], args["output"], opts,
                                   log=lambda m: None)
  assert "\n" not in str(e.value)
  assert not out.exists()
  if (d / "outs").exists():
    assert os.listdir(d / "outs") == []  # not even a temporary file


def test_cli_bad_video_one_line_exit_2(bad_inputs, rand_run, tmp_path):
  out = tmp_path / "o.mp4"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "deepjax", "swap", f"--workdir={rand_run}",
                         f"--video={bad_inputs / 'corrupt.mp4'}", f"--output={out}"],
                        capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(errors) == 1 and errors[0].startswith("error: not a readable video"), proc.stderr
  assert not out.exists() and os.listdir(tmp_path) == []
