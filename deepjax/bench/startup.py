"""Start-up time of `deepjax train` with a cold and a warm compilation cache (row `startup`).

`startup_row(config_arg="tiny")` runs the same training command twice in fresh
processes, with a fresh XLA persistent compilation cache folder and fresh run
folders, and measures the seconds from process start until the first train
step has finished (the loop prints "first step done ..."). The data is prepared
before either start, so both starts read the same prepared dataset; the
difference is (mostly) compilation that the second start loads from the cache.
"""
import os
import subprocess
import sys
import tempfile
import time

from deepjax.bench.timing import Result

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "faceswap_ae.py")


def _time_to_first_step(args: list[str], env: dict, timeout: float) -> float:
  """Seconds from spawning `deepjax train ARGS` to its "first step done" line."""
  t0 = time.perf_counter()
  proc = subprocess.Popen([sys.executable, "-u", "-m", "deepjax", "train", *args], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  seen, lines = None, []
  try:
    for line in proc.stdout:
      lines.append(line)
      if line.startswith("first step done"):
        seen = time.perf_counter() - t0
        break
      if time.perf_counter() - t0 > timeout:
        break
  finally:
    proc.kill()
    proc.communicate()
  if seen is None:
    raise RuntimeError("training did not reach its first step:\n" + "".join(lines[-20:]))
  return seen


def startup_row(config_arg: str = "tiny", timeout: float = 900) -> Result:
  """Cold vs warm start of `deepjax train --config=configs/faceswap_ae.py:ARG`: seconds
  until the first step finished for the first start (empty compilation cache; compile_s)
  and the second (same cache; step_s), on the default devices."""
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  from deepjax.data import pipeline  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory(prefix="deepjax-bench-startup-") as tmp:
    data_dir = os.path.join(tmp, "datasets")
    config = load_config("faceswap_ae", config_arg)
    data = config.data.to_dict() | {"data_dir": data_dir}
    pipeline.identity_builders(data, multihost=False)
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, "xla-cache"),
               DEEPJAX_COMPILATION_CACHE="1")
    times = []
    for i in range(2):
      args = [f"--config={CONFIG}:{config_arg}", f"--workdir={os.path.join(tmp, f'run{i}')}",
              f"--config.data.data_dir={data_dir}", "--config.preview_every=0"]
      times.append(_time_to_first_step(args, env, timeout))
  cold, warm = times
  return Result(compile_s=cold, step_s=warm,
                note=f"deepjax train faceswap_ae:{config_arg} to its first step: cold "
                     f"{cold:.1f} s, warm cache {warm:.1f} s ({cold / warm:.2f}x)",
                extra={"cold_start_s": round(cold, 2), "warm_start_s": round(warm, 2),
                       "saved_s": round(cold - warm, 2), "speedup": round(cold / warm, 2)})
