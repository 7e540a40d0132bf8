"""Test configuration: CPU only, 8 forced host devices, strict rank promotion, and XLA's
backend (LLVM) optimisation level 0.

The suite is compile-bound: most tests compile a model and run it for a few steps. At
backend optimisation level 0 XLA:CPU compiles those programs about twice as fast and runs
them more slowly (the same HLO, the same maths; only LLVM's code generation is less
optimised). The programs, benchmarks and users' runs keep XLA's default.
DEEPJAX_TEST_XLA_OPT=default runs the suite at the default level instead.
"""
import os

# Must be set before jax is imported anywhere.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  _flags += " --xla_force_host_platform_device_count=8"
if (os.environ.get("DEEPJAX_TEST_XLA_OPT", "0") != "default"
    and "xla_backend_optimization_level" not in _flags):
  _flags += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = _flags.strip()

# Persistent XLA compilation cache shared by the tests and the programs they start.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.expanduser("~"), ".cache", "deepjax", "jax-tests"))

# Programs sign their outputs with a local certificate made under $XDG_CONFIG_HOME/deepjax:
# the tests (and the programs they start) make theirs in a temporary folder, not in ~/.config.
import tempfile  # noqa: E402
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="deepjax-test-config-")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


@pytest.fixture
def shared_data():
  """Path to ../shared/data; skips the test when it is absent."""
  if not os.path.isdir(SHARED_DATA):
    pytest.skip(f"real footage not found at {SHARED_DATA}")
  return SHARED_DATA


class _Logged:
  """What deepjax logged (absl logging) during a test."""

  def __init__(self, caplog):
    self._caplog = caplog

  @property
  def text(self) -> str:
    return "\n".join(r.getMessage() for r in self._caplog.records)

  @property
  def lines(self) -> list[str]:
    return self.text.splitlines()


@pytest.fixture
def logged(caplog):
  """The messages logged through absl logging (INFO and up) during the test."""
  import logging  # pylint: disable=import-outside-toplevel
  caplog.set_level(logging.INFO, logger="absl")
  return _Logged(caplog)
