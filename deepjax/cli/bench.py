"""deepjax bench [--rows=NAME,...] [--json=bench.json] [--steps=3] [--row_arg=KEY=VALUE ...]

Prints a table (one row per benchmark of `deepjax.bench.registry`, each measured in its
own process) with the machine's dense matmul GFLOP/s measured in the same run and each
row's ratio to it; writes the same figures as JSON (`deepjax.bench.timing.Result` per
row). Rows compile without the persistent compilation cache (DEEPJAX_COMPILATION_CACHE=1
to use it), so "compile s" is a real compilation. `--row_arg` overrides an argument of
every selected row that has it (e.g. `--rows=conv --row_arg=cases=gen_final,kp_heatmap`,
`--rows=fomm_ab_64 --row_arg=rounds=4`).
"""
import ast
import dataclasses
import inspect
import json
import os
import subprocess
import sys

from absl import flags

from deepjax.bench import registry
from deepjax.bench.timing import Result
from deepjax.cli import program
from deepjax.errors import UserError

_ROWS = flags.DEFINE_list("rows", list(registry.DEFAULT_ROWS),
                          f"Rows to run; known: {', '.join(registry.ROWS)}.")
_JSON = flags.DEFINE_string("json", "bench.json", "Where to write the JSON results.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps of the rows that take them "
                              "(after warm-up).")
_ROW_ARG = flags.DEFINE_multi_string("row_arg", [], "KEY=VALUE: an argument for the rows "
                                     "that take KEY (VALUE a Python literal, else a string).")
_ONE = flags.DEFINE_string("one_row", None, "Internal: run one row, print its JSON.")

HEADER = (f"{'row':<20}{'batch':>6}{'compile s':>10}{'step s':>9}{'images/s':>10}{'GFLOP/s':>9}"
          f"{'%peak':>7}{'RSS MB':>9}  note")


def row_args(specs: list[str]) -> dict:
  """['rounds=4', 'config=fomm_vox256:tiny'] -> {'rounds': 4, 'config': 'fomm_vox256:tiny'}."""
  out = {}
  for spec in specs:
    key, eq, value = spec.partition("=")
    if not eq or not key.strip():
      raise UserError(f"--row_arg must be KEY=VALUE, got {spec!r}")
    try:
      out[key.strip()] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key.strip()] = value
  return out


def args_for(name: str, args: dict) -> dict:
  """The part of `args` that row `name`'s function takes."""
  params = inspect.signature(registry.ROWS[name].function()).parameters
  return {k: v for k, v in args.items() if k in params}


def check_rows(names: list[str], args: dict) -> None:
  unknown = [r for r in names if r not in registry.ROWS]
  if unknown:
    raise UserError(f"unknown rows: {', '.join(unknown)}; known: {', '.join(registry.ROWS)}")
  unused = set(args) - {k for n in names for k in args_for(n, args)}
  if unused:
    raise UserError(f"--row_arg {', '.join(sorted(unused))}: taken by none of the rows "
                    f"{', '.join(names)}")


def run_child(name: str) -> dict:
  """Runs row `name` in a fresh process -> its Result as a dict (note and extra say why
  when it failed). Rows compile cold unless the caller set DEEPJAX_COMPILATION_CACHE."""
  env = dict(os.environ)
  env.setdefault("DEEPJAX_COMPILATION_CACHE", "0")
  cmd = [sys.executable, "-m", "deepjax", "bench", f"--one_row={name}", f"--steps={_STEPS.value}",
         *(f"--row_arg={a}" for a in _ROW_ARG.value)]
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
  line = [l for l in proc.stdout.splitlines() if l.startswith("BENCH_JSON ")]
  if proc.returncode or not line:
    err = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return dataclasses.asdict(Result(row=name, note=f"failed: {err}",
                                     extra={"error": err}))
  return json.loads(line[-1][len("BENCH_JSON "):])


def fmt_row(r: dict, peak: float | None) -> str:
  def g(k, f="{:.2f}"):
    return f.format(r[k]) if r.get(k) is not None else "-"
  ratio = f"{100 * r['gflops'] / peak:.0f}%" if peak and r.get("gflops") else "-"
  return (f"{r['row']:<20}{g('batch', '{}'):>6}{g('compile_s', '{:.1f}'):>10}"
          f"{g('step_s', '{:.3f}'):>9}{g('images_per_s', '{:.1f}'):>10}{g('gflops', '{:.1f}'):>9}"
          f"{ratio:>7}{g('peak_rss_mb', '{:.0f}'):>9}  {r.get('note', '')}")


def main(argv):
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = row_args(_ROW_ARG.value)
  if _ONE.value:
    result = registry.run_row(_ONE.value, args_for(_ONE.value, args), _STEPS.value)
    print("BENCH_JSON " + json.dumps(dataclasses.asdict(result)), flush=True)
    return
  names = list(_ROWS.value)
  if "matmul" not in names:
    names.insert(0, "matmul")
  check_rows(names, args)
  results, peak = [], None
  print(HEADER)
  for name in names:
    r = run_child(name)
    if name == "matmul" and r.get("gflops"):
      peak = r["gflops"]
    elif peak and r.get("gflops"):
      r["extra"]["fraction_of_matmul_peak"] = r["gflops"] / peak
    print(fmt_row(r, peak), flush=True)
    results.append(r)
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  write_text_atomic(_JSON.value, json.dumps({"matmul_gflops": peak, "rows": results}, indent=2))
  print(f"wrote {_JSON.value}")


def run(argv=None):
  program.run(main, argv)
