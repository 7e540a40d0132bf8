"""Start-up time of `deepjax train`, cold and warm, for any recipe (rows `startup_*`).

`startup_row(config="faceswap_ae:tiny")` runs the same training command three times
in fresh processes and fresh run folders, and measures the seconds from process start
until the first train step has finished (the loop prints "first step done ..."):
1. cold: an empty data folder and an empty XLA compilation cache (a new user's first
   run: data preparation, imports, compilation);
2. data ready: the data prepared by start 1, a second empty compilation cache (the cost
   of compiling alone);
3. warm: the same data and the cache start 2 filled (a rerun).
Synthetic data sources only (the row needs no footage): motion configs train on
synthetic talking heads here.
"""
import os
import subprocess
import sys
import tempfile
import time

from deepjax.bench.timing import Result

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# config file stem -> overrides that make it train on data made here.
SYNTHETIC = {"fomm_vox256": ("--config.data.source=synthetic",),
             "tpsmm_vox256": ("--config.data.source=synthetic",)}


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


def startup_row(config: str = "faceswap_ae:tiny", timeout: float = 1200) -> Result:
  """Cold, data-ready and warm starts of `deepjax train --config=configs/FILE.py:ARG`
  (`config` "FILE:ARG") to its first finished step, on the default devices.
  compile_s: the cold start; step_s: the warm one; extra: all three."""
  stem, _, arg = config.partition(":")
  config_path = os.path.join(REPO, "configs", f"{stem}.py") + (f":{arg}" if arg else "")
  with tempfile.TemporaryDirectory(prefix="deepjax-bench-startup-") as tmp:
    data_dir = os.path.join(tmp, "datasets")
    times = {}
    for i, (name, cache) in enumerate((("cold", "cache1"), ("data_ready", "cache2"),
                                       ("warm", "cache2"))):
      env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, cache),
                 DEEPJAX_COMPILATION_CACHE="1")
      args = [f"--config={config_path}", f"--workdir={os.path.join(tmp, f'run{i}')}",
              f"--config.data.data_dir={data_dir}", *SYNTHETIC.get(stem, ())]
      times[name] = _time_to_first_step(args, env, timeout)
  cold, ready, warm = times["cold"], times["data_ready"], times["warm"]
  return Result(compile_s=cold, step_s=warm,
                note=f"deepjax train {config} to its first step: cold {cold:.1f} s, data "
                     f"ready {ready:.1f} s, warm {warm:.1f} s",
                extra={"cold_start_s": round(cold, 2), "data_ready_start_s": round(ready, 2),
                       "warm_start_s": round(warm, 2), "data_s": round(cold - ready, 2),
                       "compile_saved_s": round(ready - warm, 2)})
