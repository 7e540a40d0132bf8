"""The Colab notebooks run top to bottom on CPU in smoke mode (so they cannot rot).

Each notebook reads DEEPJAX_NOTEBOOK_SMOKE=1 in its parameters cell (few frames, few
steps, a random `fomm_vox256:tiny` run folder instead of a published checkpoint) and
DEEPJAX_NOTEBOOK_WORKDIR for its outputs. Needs the `notebooks` extra (nbclient,
nbformat, ipykernel); skipped without it.
"""
import glob
import json
import os

import pytest

from deepjax import testing

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "colab", "*.ipynb")))


def _read(path):
  with open(path) as f:
    return nbformat.read(f, as_version=4)


def test_notebooks_present_and_parameterised():
  names = {os.path.basename(p) for p in NOTEBOOKS}
  assert {"animate_a_photo.ipynb", "faceswap.ipynb", "catch_the_fakes.ipynb"} <= names
  for path in NOTEBOOKS:
    nb = _read(path)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "DEEPJAX_NOTEBOOK_SMOKE" in params[0].source, path
    # Committed without outputs (small diffs, no stale results).
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path


def _outputs_text(nb):
  out = []
  for cell in nb.cells:
    for o in cell.get("outputs", []):
      out.append(o.get("text", "") or json.dumps(o.get("data", {}))[:200])
  return "\n".join(out)


@pytest.mark.slow
@pytest.mark.parametrize("name,expected", [
    ("animate_a_photo", "animated.mp4"),
    ("faceswap", "swap_b2a.mp4"),
    ("catch_the_fakes", "detect.json"),
])
def test_notebook_runs_in_smoke_mode(tmp_path, monkeypatch, name, expected):
  monkeypatch.setenv("DEEPJAX_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("DEEPJAX_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  # A user's session: the kernel sees the real device count, not conftest's 8 forced ones.
  monkeypatch.setenv("XLA_FLAGS", testing.program_env()["XLA_FLAGS"])
  nb = _read(os.path.join(REPO, "colab", f"{name}.ipynb"))
  client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": REPO}})
  try:
    client.execute()
  except nbclient.exceptions.CellExecutionError as e:
    pytest.fail(f"{name}: {str(e)[-3000:]}")
  result = tmp_path / "work" / expected
  assert result.exists() and result.stat().st_size > 1000, _outputs_text(nb)[-3000:]
  # The video is shown inline (embedded mp4).
  assert "video/mp4" in _outputs_text(nb) or "<video" in _outputs_text(nb)
