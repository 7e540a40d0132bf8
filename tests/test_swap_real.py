"""deepjax.eval.swap_real: metric functions on synthetic inputs with known answers, bad inputs."""
import os
import subprocess
import sys

import numpy as np
import pytest

from deepjax import testing
from deepjax.errors import UserError
from deepjax.eval import swap_real as sr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _landmarks(n, seed=0):
  rng = np.random.default_rng(seed)
  lm = rng.uniform(20, 80, (n, 68, 2))
  lm[:, sr.LEFT_EYE_OUTER] = [30, 40]
  lm[:, sr.RIGHT_EYE_OUTER] = [70, 40]  # inter-ocular distance 40
  return lm


def test_retrieval_and_distances():
  gallery = np.random.default_rng(0).normal(size=(4, 128))
  assert sr.retrieval(gallery, gallery, 0) == 25.0  # each row nearest to itself
  assert sr.retrieval(gallery[[2, 2, 2]], gallery, 2) == 100.0
  near = gallery[[1, 1]] + 1e-3
  assert sr.retrieval(near, gallery, 1) == 100.0 and sr.retrieval(near, gallery, 0) == 0.0
  assert sr.mean_distance(gallery[[3]], gallery[3]) == 0.0
  np.testing.assert_allclose(sr.mean_distance(np.zeros((2, 128)), np.full(128, 0.5)),
                             np.sqrt(128 * 0.25))


def test_nme_by_hand():
  lm = _landmarks(3)
  assert sr.nme(lm, lm) == 0.0
  np.testing.assert_allclose(sr.nme(lm + [4.0, 0.0], lm), 4.0 / 40.0)  # 4 px / 40 px
  np.testing.assert_allclose(sr.interocular(lm), 40.0)


def test_jitter_static_and_moving():
  static = np.repeat(_landmarks(1), 5, axis=0)
  assert sr.jitter(static, static) == 0.0
  moving = static + np.arange(5)[:, None, None] * np.array([2.0, 0.0])
  assert sr.jitter(moving, moving) == 0.0  # the output moves exactly as its input
  np.testing.assert_allclose(sr.jitter(static, moving), 2.0 / 40.0)  # input moves, output frozen
  assert np.isnan(sr.jitter(static[:1], static[:1]))


def test_synthetic_run_is_refused(tmp_path):
  run = testing.random_swap_run(str(tmp_path / "synthetic"))
  with pytest.raises(UserError, match="face folders"):
    sr.check_workdir(run)
  run = testing.random_swap_run(str(tmp_path / "folders"),
                                data={"source": "folders", "a": str(tmp_path / "nope"), "b": ""})
  with pytest.raises(UserError, match="data.a"):
    sr.check_workdir(run)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  p = subprocess.run([sys.executable, "-m", "deepjax", "evaluate", "--task=swap_real",
                      f"--workdir={tmp_path / 'synthetic'}"], capture_output=True, text=True,
                     env=env, cwd=REPO, timeout=120, check=False)
  assert p.returncode == 2, p.stderr
  err = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert len(err) == 1 and err[0].startswith("error:") and "face folders" in err[0], p.stderr


def test_score_row_and_table():
  rng = np.random.default_rng(1)
  gallery = rng.normal(size=(3, 128))
  lm = _landmarks(4)
  faces = rng.uniform(size=(4, 16, 16, 3))
  inputs = {"lm": lm, "emb": gallery[[0] * 4], "found": np.ones(4, bool)}
  swapped = {"lm": lm + [4.0, 0.0], "emb": gallery[[1, 1, 1, 2]],
             "found": np.array([1, 1, 0, 0], bool)}
  row = sr.score(faces, faces, inputs, swapped, gallery, ["a", "b", "c"], "b", "a")
  assert row["nearest"] == {"b": 3, "c": 1}
  assert row["retrieval"] == 75.0 and row["found"] == 50.0 and row["frames"] == 4
  np.testing.assert_allclose(row["nme"], 0.1)
  assert row["jitter"] == pytest.approx(0.0, abs=1e-12) and row["sharpness"] == pytest.approx(1.0)
  np.testing.assert_allclose(row["dist_source"], np.linalg.norm(gallery[1] - gallery[0]) * 0.75
                             + np.linalg.norm(gallery[2] - gallery[0]) * 0.25)
  report = {"results": {"a2b": {"swap": row}}, "gallery": ["a", "b", "c"],
            "gallery_distances": np.linalg.norm(gallery[:, None] - gallery[None], axis=-1).tolist(),
            "frames": {"a": 4, "b": 4}, "input_found": {"a": 100.0, "b": 100.0}}
  table = sr.format_table(report)
  assert "75.0" in table and "3 identities" in table
