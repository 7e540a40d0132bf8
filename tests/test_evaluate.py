"""Swap evaluation: landmark regressor maths and files, deepjax evaluate end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepjax.eval import sharpness
from deepjax.eval import swap_synthetic as swap_eval
from deepjax.configs_lib import load_config
from deepjax.errors import UserError
from deepjax.eval import landmark_regressor as lmr
from deepjax.eval import swap_quality
from deepjax.testing import TINY_SWAP_MODEL, small_swap_config
from deepjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_LMR = dict(size=32, n_train=64, n_test=16, steps=20, batch=16, features=(8, 16))


def test_nme_and_pixel_error_by_hand():
  gt = np.zeros((1, 68, 2))
  gt[0, 36] = (-0.5, 0.0)
  gt[0, 45] = (0.5, 0.0)  # inter-ocular distance 1
  pred = gt.copy()
  pred[0, :34] += (0.3, 0.4)  # half the points off by 0.5
  np.testing.assert_allclose(lmr.nme(pred, gt), [0.25])
  np.testing.assert_allclose(lmr.pixel_error(pred, gt, 64), [0.25 * 32])


def test_regressor_trains_saves_and_loads(tmp_path):
  params, report = lmr.train(TINY_LMR)
  assert set(report["test"]) == {"sharp", "half_blurred"}
  x, y = lmr.synthetic_set(8, 32, lmr.TEST_IDENTITY_BASE, 5)
  pred = lmr.predict(params, x, report["settings"])
  assert pred.shape == (8, 68, 2) and np.all(np.isfinite(pred))
  lmr.save(str(tmp_path / "lm"), params, report)
  params2, report2 = lmr.load(str(tmp_path / "lm"))
  np.testing.assert_allclose(lmr.predict(params2, x, report2["settings"]), pred, atol=1e-6)
  # Larger inputs are resized to the regressor's size.
  big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
  assert lmr.predict(params, big, report["settings"]).shape == (8, 68, 2)
  with pytest.raises(UserError, match="no landmark regressor"):
    lmr.load(str(tmp_path / "nothing"))


def test_trained_regressor_beats_the_mean_shape(tmp_path):
  """Its error on unseen faces is below that of always answering the training mean."""
  s = dict(TINY_LMR, steps=150, n_train=512)
  params, report = lmr.train(s)
  _, y_train = lmr.synthetic_set(512, 32, lmr.TRAIN_IDENTITY_BASE, 11)
  x, y = lmr.synthetic_set(64, 32, lmr.TEST_IDENTITY_BASE, 77)
  mean_shape = np.broadcast_to(y_train.mean(0), y.shape)
  assert lmr.nme(lmr.predict(params, x, report["settings"]), y).mean() < \
      0.8 * lmr.nme(mean_shape, y).mean()


def tiny_gan(tmp, steps=3):
  c = small_swap_config("faceswap_gan", tmp / "datasets", steps, model=TINY_SWAP_MODEL,
                        num_train=16, learning_rate=None, log_every=steps,
                        checkpoint_every=steps, preview_every=0)
  with c.unlocked():
    c.gan.discriminator.features = (8,)
  return c


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("evaluate")
  params, report = lmr.train(TINY_LMR)
  lmr.save(str(tmp / "lm"), params, report)
  loop.train_and_evaluate(tiny_gan(tmp), str(tmp / "gan"))
  # A checkpoint of another family (only its config matters to the check).
  cfg = tmp / "motion" / "checkpoints" / "1"
  os.makedirs(cfg / "state")
  os.makedirs(cfg / "config")
  (cfg / "config" / "metadata").write_text(json.dumps({"task": "motion"}))
  return tmp


def cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "deepjax", "evaluate", *args], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300, check=False)


def test_evaluate_swap_cli_end_to_end(setup, tmp_path):
  out = tmp_path / "eval.json"
  p = cli(f"--workdir={setup / 'gan'}", f"--landmarks={setup / 'lm'}", "--frames=8",
          f"--output={out}")
  assert p.returncode == 0, p.stderr
  assert "landmark regressor's own error" in p.stdout and "model (raw RGB)" in p.stdout
  report = json.loads(out.read_text())
  rows = report["results"]["a2b"]
  assert set(rows) == {"model", "model_raw", "input", "mean_face", "face_paste", "ground_truth"}
  for name, m in rows.items():
    assert np.isfinite(m["nme"]) and m["nme"] >= 0, name
  # The "input" row against an independent numpy PSNR of the same clip.
  config = load_config("faceswap_gan", "tiny")
  with config.unlocked():
    config.data.size = 32
  clip = swap_eval.heldout_clip(config.data, 8)
  mse = ((clip["a"].astype(np.float64) - clip["b"]) ** 2).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(rows["input"]["psnr"], np.mean(10 * np.log10(1 / mse)), rtol=1e-4)
  # Inside the ground truth's face region, by numpy over the region's pixels.
  face = swap_eval.face_region(clip["b_landmarks"], 32)[..., 0].astype(bool)
  assert 0.05 < face.mean() < 0.5
  face_mse = [((clip["a"][t] - clip["b"][t])[face[t]] ** 2).mean() for t in range(8)]
  np.testing.assert_allclose(rows["input"]["face_psnr"], np.mean(10 * np.log10(1 / np.array(
      face_mse))), rtol=1e-4)
  # The ground truth's face pasted into the input: exact inside, the input outside.
  paste = rows["face_paste"]
  assert paste["face_l1"] == 0.0 and paste["face_psnr"] >= 99.0
  assert rows["input"]["psnr"] < paste["psnr"] < 99.0
  # Sharpness inside the face region, relative to the ground truth's.
  np.testing.assert_allclose(rows["input"]["face_sharpness"], sharpness.sharpness_ratio(
      clip["a"], clip["b"], face[..., None].astype(np.float32)), rtol=1e-6)
  assert rows["ground_truth"]["face_sharpness"] == 1.0
  # The ground-truth row is the regressor's own error on the clip.
  params, rep = lmr.load(str(setup / "lm"))
  floor = lmr.nme(lmr.predict(params, clip["b"], rep["settings"]), clip["b_landmarks"]).mean()
  np.testing.assert_allclose(rows["ground_truth"]["nme"], floor, rtol=1e-4)


@pytest.mark.parametrize("case", ["missing", "motion", "task", "no_workdir",
                                  "reconstruction_missing", "reconstruction_frames"])
def test_evaluate_bad_inputs_one_line(setup, tmp_path, case):
  args = {"missing": [f"--workdir={tmp_path}/nope"],
          "motion": [f"--workdir={setup / 'motion'}", f"--landmarks={setup / 'lm'}"],
          "task": [f"--workdir={setup / 'gan'}", "--task=nope"],
          "no_workdir": [],
          "reconstruction_missing": ["--task=reconstruction", f"--workdir={tmp_path}/nope"],
          "reconstruction_frames": ["--task=reconstruction", f"--workdir={tmp_path}",
                                    "--frames=0"]}[case]
  p = cli(*args)
  assert p.returncode == 2, p.stderr
  err = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert len(err) == 1 and err[0].startswith("error:"), p.stderr


def test_check_swap_workdir_refuses_other_families(setup, tmp_path):
  with pytest.raises(UserError, match="motion"):
    swap_quality.check_swap_workdir(str(setup / "motion"))


def test_reconstruction_checks_before_loading(tmp_path):
  from deepjax.eval import reconstruction
  with pytest.raises(UserError, match="run folder not found"):
    reconstruction.evaluate_reconstruction(str(tmp_path / "nope"))
  with pytest.raises(UserError, match="frames per video must be positive"):
    reconstruction.evaluate_reconstruction(str(tmp_path), max_frames=0)
