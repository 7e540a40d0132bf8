"""deepjax sample end to end on a tiny VAE, and its bad inputs."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepjax.testing import TINY_SWAP_MODEL, small_swap_config
from deepjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(name, tmp, steps=3):
  return small_swap_config(name, tmp / "datasets", steps, model=TINY_SWAP_MODEL, num_train=16,
                           learning_rate=None, log_every=steps, checkpoint_every=steps,
                           preview_every=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("sample")
  out = {}
  for family in ("vae", "ae"):
    out[family] = str(tmp / family)
    loop.train_and_evaluate(tiny(f"faceswap_{family}", tmp), out[family])
  return out


def cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "deepjax", "sample", *args], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300, check=False)


def test_sample_writes_grids(runs, tmp_path):
  p = cli(f"--workdir={runs['vae']}", f"--output={tmp_path}", "--n=5", "--steps=4",
          "--scale=1")
  assert p.returncode == 0, p.stderr
  samples = np.asarray(Image.open(tmp_path / "samples.png"))
  assert samples.shape == (2 * 34, 5 * 34, 3)  # rows A, B; 32 px + 2 px padding
  strip = np.asarray(Image.open(tmp_path / "interpolation.png"))
  assert strip.shape == (2 * 34, (4 + 2) * 34, 3)
  # Random faces differ from each other (not one constant image).
  assert samples[:32, :32].std() > 0 and np.abs(samples[:32, :32].astype(int)
                                                - samples[:32, 34:66].astype(int)).max() > 0
  assert not [f for f in os.listdir(tmp_path) if "partial" in f]
  from deepjax.provenance.verify import read_c2pa
  assert all(read_c2pa(str(tmp_path / f))["valid"] for f in ("samples.png", "interpolation.png"))


@pytest.mark.parametrize("case", ["missing", "ae", "bad_n"])
def test_sample_bad_inputs_one_line(runs, tmp_path, case):
  args = {"missing": [f"--workdir={tmp_path}/nope"],
          "ae": [f"--workdir={runs['ae']}"],
          "bad_n": [f"--workdir={runs['vae']}", "--n=0"]}[case]
  p = cli(*args)
  assert p.returncode == 2, p.stderr
  err = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert len(err) == 1 and err[0].startswith("error:"), p.stderr
