"""deepjax bench [--rows=NAME,...] [--json=bench.json] [--steps=3]

Prints a table (one row per benchmark, each measured in its own process) with
the machine's dense matmul GFLOP/s measured in the same run and each row's
ratio to it; writes the same figures as JSON. Rows compile without the persistent
compilation cache (DEEPJAX_COMPILATION_CACHE=1 to use it), so "compile s" is a real
compilation.
"""
import json
import os
import subprocess
import sys

from absl import flags

from deepjax.cli import program

# name -> (callable path, kwargs). Each is run in a fresh process.
ROWS = {
    "matmul": ("deepjax.bench.timing:matmul_peak", {}),
    "ae_seeds": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_ae", "arg": "seeds",
                                                  "batch_size": 64}),
    "ae_tiny": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_ae", "arg": "tiny"}),
    "ae_original": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_ae",
                                                     "arg": "original", "batch_size": 64}),
    "vae_tiny": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_vae", "arg": "tiny"}),
    "gan_tiny": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_gan", "arg": "tiny"}),
    "vae_original": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_vae",
                                                      "arg": "original", "batch_size": 64}),
    "gan_original": ("deepjax.bench.timing:train_row", {"config_name": "faceswap_gan",
                                                      "arg": "original", "batch_size": 64}),
    "synthetic": ("deepjax.bench.synthetic:bench", {}),
    "augment": ("deepjax.bench.augment:bench_augment", {}),
    "data_swap": ("deepjax.bench.data:bench_swap_pipeline", {}),
    "data_video": ("deepjax.bench.data:bench_video_io", {}),
    "extract": ("deepjax.bench.extract:bench_extract", {}),
    "swap_video": ("deepjax.bench.video_swap:bench_swap_video", {}),
    "fomm_train_64": ("deepjax.bench.motion_train:bench_train",
                      {"config_arg": "fomm_vox256:res=64", "batch": 8, "steps": 2,
                       "random_vgg": True}),
    "fomm_train_256": ("deepjax.bench.motion_train:bench_train",
                       {"config_arg": "fomm_vox256", "batch": 2, "steps": 1,
                        "random_vgg": True}),
    "fomm_animate_64": ("deepjax.bench.fomm_animate:bench",
                        {"config_name": "fomm_vox256:res=64", "batch": 16,
                         "steps": 3}),
    "fomm_animate_256": ("deepjax.bench.fomm_animate:bench",
                         {"config_name": "fomm_vox256", "batch": 8, "steps": 2}),
    "fomm_parts_64": ("deepjax.bench.motion_train:bench_parts",
                      {"config_arg": "fomm_vox256:res=64", "batch": 8}),
    "fomm_tiny_train": ("deepjax.bench.motion_train:bench_train",
                        {"config_arg": "fomm_tiny", "batch": 8, "steps": 3}),
    "startup": ("deepjax.bench.startup:bench", {"config_arg": "tiny"}),
    "reductions": ("deepjax.bench.reductions:bench", {}),
    "conv": ("deepjax.bench.conv:bench_row", {}),
    "adam": ("deepjax.train.optim:bench", {}),
    "fomm_ab_64": ("deepjax.bench.motion_ab:bench",
                   {"config_arg": "fomm_vox256:res=64", "batch": 8, "rounds": 8}),
}
DEFAULT_ROWS = ("matmul", "synthetic", "ae_seeds", "ae_tiny", "vae_tiny", "gan_tiny",
                "ae_original", "gan_original", "extract", "swap_video", "fomm_animate_64",
                "fomm_train_64")

_ROWS = flags.DEFINE_list("rows", list(DEFAULT_ROWS), f"Rows to run; known: {', '.join(ROWS)}.")
_JSON = flags.DEFINE_string("json", "bench.json", "Where to write the JSON results.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per training row (after warm-up).")
_ONE = flags.DEFINE_string("one_row", None, "Internal: run one row, print its JSON.")


def run_one(name: str, steps: int) -> dict:
  import importlib  # pylint: disable=import-outside-toplevel
  path, kwargs = ROWS[name]
  module, fn = path.split(":")
  kwargs = dict(kwargs)
  if fn == "train_row":
    kwargs["steps"] = steps
  r = dict(getattr(importlib.import_module(module), fn)(**kwargs))
  return normalise_row(name, r)


def normalise_row(name: str, r: dict) -> dict:
  """Gives every row the table's keys (row, step_s, images_per_s, gflops, peak_rss_mb)."""
  from deepjax.bench.timing import peak_rss_mb  # pylint: disable=import-outside-toplevel
  r.setdefault("row", name)
  if "step_s" not in r and "s_per_step" in r:
    r["step_s"] = r["s_per_step"]
  if "batch" not in r and "frames_per_call" in r:
    r["batch"] = r["frames_per_call"]
  if "step_s" not in r and "frames_per_s" in r and r.get("batch"):
    r["step_s"] = r["batch"] / r["frames_per_s"]
  if "images_per_s" not in r and "frames_per_s" in r:
    r["images_per_s"] = r["frames_per_s"]
  if "gflops" not in r and r.get("gflop_per_s"):
    r["gflops"] = r["gflop_per_s"]
  r.setdefault("peak_rss_mb", peak_rss_mb())
  return r


def child_env() -> dict:
  """Rows compile cold (compile seconds are real compilations) unless the caller set
  DEEPJAX_COMPILATION_CACHE; the `startup` row sets up its own cold and warm caches."""
  env = dict(os.environ)
  env.setdefault("DEEPJAX_COMPILATION_CACHE", "0")
  return env


def fmt_row(r: dict, peak: float | None) -> str:
  def g(k, f="{:.2f}"):
    return f.format(r[k]) if k in r and r[k] is not None else "-"
  ratio = f"{100 * r['gflops'] / peak:.0f}%" if peak and r.get("gflops") else "-"
  extra = r.get("note", "")
  if "frames_per_s" in r:
    extra = f"{r['frames_per_s']:.0f} frames/s " + extra
  return (f"{r['row']:<34}{g('batch', '{}'):>6}{g('compile_s', '{:.1f}'):>10}{g('step_s', '{:.3f}'):>9}"
          f"{g('images_per_s', '{:.1f}'):>10}{g('gflops', '{:.1f}'):>9}{ratio:>7}"
          f"{g('peak_rss_mb', '{:.0f}'):>9}  {extra}")


def main(argv):
  from deepjax.errors import UserError  # pylint: disable=import-outside-toplevel
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _ONE.value:
    print("BENCH_JSON " + json.dumps(run_one(_ONE.value, _STEPS.value)), flush=True)
    return
  unknown = [r for r in _ROWS.value if r not in ROWS]
  if unknown:
    raise UserError(f"unknown rows: {', '.join(unknown)}; known: {', '.join(ROWS)}")
  names = list(_ROWS.value)
  if "matmul" not in names:
    names.insert(0, "matmul")
  results, peak = [], None
  print(f"{'row':<34}{'batch':>6}{'compile s':>10}{'step s':>9}{'images/s':>10}{'GFLOP/s':>9}"
        f"{'%peak':>7}{'RSS MB':>9}")
  for name in names:
    proc = subprocess.run([sys.executable, "-m", "deepjax", "bench", f"--one_row={name}",
                           f"--steps={_STEPS.value}"], capture_output=True, text=True,
                          env=child_env(), check=False)
    line = [l for l in proc.stdout.splitlines() if l.startswith("BENCH_JSON ")]
    if proc.returncode or not line:
      err = (proc.stderr.strip().splitlines() or ["?"])[-1]
      r = {"row": name, "error": err}
      print(f"{name:<34}failed: {err}")
    else:
      r = json.loads(line[-1][len("BENCH_JSON "):])
      if name == "matmul":
        peak = r["gflops"]
        print(f"{'matmul f32 (machine peak)':<34}{'':>6}{'':>10}{'':>9}{'':>10}{peak:>9.1f}"
              f"{'100%':>7}")
      else:
        if peak and r.get("gflops"):
          r["fraction_of_matmul_peak"] = r["gflops"] / peak
        print(fmt_row(r, peak), flush=True)
    results.append(r)
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  write_text_atomic(_JSON.value, json.dumps({"matmul_gflops": peak, "rows": results}, indent=2))
  print(f"wrote {_JSON.value}")


def run(argv=None):
  program.run(main, argv)
