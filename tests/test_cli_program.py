"""deepjax.cli.program.check_args: the one check of stray words and required flags."""
import pytest

from deepjax.cli import program
from deepjax.errors import UserError


def test_check_args():
  program.check_args(["deepjax"], (("workdir", "runs/x", "a run folder"),))
  with pytest.raises(UserError, match="^unexpected arguments: a b$"):
    program.check_args(["deepjax", "a", "b"])
  with pytest.raises(UserError, match=r"^--workdir is required \(a run folder\)$"):
    program.check_args(["deepjax"], (("output", "o.mp4", None), ("workdir", "", "a run folder")))
  with pytest.raises(UserError, match="^--output is required$"):
    program.check_args(["deepjax"], (("output", None, None),))
