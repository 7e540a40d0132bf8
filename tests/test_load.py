"""deepjax.load on a first-order-motion run folder, without deepjax's training code.

Runs the `deepjax.load` example of docs/checkpoints.md verbatim in a fresh interpreter
(on a converted `fomm_vox256:tiny` run folder with the parity recipe's weights and 64 px inputs),
checks its frames against the same computation in this process, and that neither
`deepjax.train` nor the data pipelines were imported.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from deepjax.configs_lib import load_config
from deepjax.convert import fomm as convert_fomm
from deepjax.data.video import write_image, write_video
from deepjax.models.motion.fomm import FOMM
from deepjax.ops.keypoints import relative_motion

# The reference's vox-256 normalization_params (deepjax animate's defaults).
VOX256_NORMALIZATION = dict(adapt_movement_scale=False, use_relative_movement=True,
                            use_relative_jacobian=True)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DOC = os.path.join(REPO, "docs", "checkpoints.md")


def _example_code() -> str:
  text = open(DOC).read()
  section = text[text.index("`deepjax.load`"):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _tiny_variables():
  spec = importlib.util.spec_from_file_location(
      "make_fomm_parity_fixture", os.path.join(HERE, "fixtures", "make_fomm_parity_fixture.py"))
  recipe = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipe)
  with np.load(os.path.join(HERE, "fixtures", "fomm_parity.npz")) as ref:
    names_shapes = json.loads(str(ref["tiny/names_shapes"]))
  config = load_config("fomm_vox256", "tiny")
  fomm = FOMM.from_config(config.model)
  state = recipe.random_state_dict(names_shapes, 1)
  return config, fomm, convert_fomm.fomm_variables(state, fomm, 64)


def test_example_in_docs_is_short():
  lines = [l for l in _example_code().splitlines() if l.strip()]
  assert len(lines) <= 13, lines


@pytest.mark.slow
def test_load_and_animate_without_training_code(tmp_path):
  config, fomm, variables = _tiny_variables()
  run = str(tmp_path / "runs" / "vox-cpk")
  convert_fomm.write_run(run, variables, config)
  rng = np.random.default_rng(0)
  photo = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
  video = (rng.random((3, 64, 64, 3)) * 255).astype(np.uint8)
  write_image(str(tmp_path / "photo.png"), photo)
  write_video(str(tmp_path / "driving.mp4"), video, fps=10)
  code = _example_code() + "\n".join([
      "",
      "import sys, numpy as np",
      "assert not [m for m in sys.modules if m.startswith(('deepjax.train', 'deepjax.data.pipeline',"
      " 'deepjax.data.builders', 'tensorflow_datasets', 'optax'))], sorted(sys.modules)",
      "np.save('frames.npy', np.asarray(frames))",
      "np.save('driving.npy', np.asarray(driving))",
  ])
  r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                     text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert r.returncode == 0, r.stderr[-3000:]
  frames = np.load(tmp_path / "frames.npy")
  driving = np.load(tmp_path / "driving.npy")  # as decoded from the mp4
  assert frames.shape == (2, 64, 64, 3)
  # The same computation here, with the variables that were saved.
  source = (photo[None] / 255.0).astype(np.float32)
  detect, animate = jax.jit(fomm.detect), jax.jit(fomm.animate)
  kp_s, kp_d = detect(variables, source), detect(variables, driving)
  kp = relative_motion(kp_s, kp_d, jax.tree.map(lambda x: x[:1], kp_d),
                       **VOX256_NORMALIZATION)
  expected = animate(variables, source, kp_s, kp)["prediction"]
  np.testing.assert_allclose(frames, np.asarray(expected), atol=1e-5)
  # Frame 0 is driven by the initial pose itself: relative motion is the identity there,
  # so it equals generating with the source's own keypoints.
  same = animate(variables, source, kp_s, kp_s)
  np.testing.assert_allclose(frames[0], np.asarray(same["prediction"])[0], atol=1e-5)
