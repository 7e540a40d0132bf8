"""How long `deepjax train` takes to make its first state (`loop.init_state`: compile and run
a model's init), with init compiled at LLVM -O1 (`compile_options.jit_once`, what the loop
does) and at XLA's default -O3 (what it did before), and whether the parameters are the same.

  python scripts/ab_init_compile.py --configs fomm_vox256:tiny tpsmm_vox256:tiny \\
      faceswap_ae:tiny --rounds 2

Swap and motion configs (their batches are made by `deepjax.bench.train.random_batch_for`).
Each measurement is a fresh process with an empty compilation cache; the levels alternate.
A level other than -O1 is set by XLA_FLAGS=--xla_backend_optimization_level=N, which
`jit_once` leaves as it is (--levels 0 1 3 compares three). Prints seconds per level and
round, and "same" when every level gave bit-identical parameters.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(spec: str) -> None:
  """Prints '<seconds> <sha256 of the parameters>' for one init of `spec`."""
  sys.path.insert(0, REPO)
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from deepjax.bench.timing import load_spec  # pylint: disable=import-outside-toplevel
  from deepjax.bench.train import random_batch_for  # pylint: disable=import-outside-toplevel
  from deepjax.train import loop, parallel  # pylint: disable=import-outside-toplevel
  from deepjax.train.tasks import build_task  # pylint: disable=import-outside-toplevel
  cfg = load_spec(spec)
  task = build_task(cfg)
  mesh = parallel.make_mesh()
  batch = 2 if cfg.task == "motion" else int(cfg.batch_size)
  data = parallel.to_global(random_batch_for(cfg, batch, np.random.default_rng(0)), mesh)
  start = time.perf_counter()
  state, _, _ = loop.init_state(task, cfg, mesh, data)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(state.params):
    digest.update(np.asarray(leaf).tobytes())
  print(f"{seconds:.2f} {digest.hexdigest()}")


def measure(spec: str, level: str) -> tuple:
  """-> (seconds, digest) of one init in a fresh process; level "1" is jit_once's own."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = "" if level == "1" else f"--xla_backend_optimization_level={level}"
  with tempfile.TemporaryDirectory() as cache:
    env["JAX_COMPILATION_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, __file__, "--child", spec], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
  return float(out[-2]), out[-1]


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--configs", nargs="+",
                  default=["fomm_vox256:tiny", "tpsmm_vox256:tiny", "faceswap_ae:tiny"])
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--levels", nargs="+", default=["1", "3"],
                  help="LLVM levels to compare (1: jit_once's own; others through XLA_FLAGS)")
  ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
  args = ap.parse_args()
  if args.child:
    child(args.child)
    return
  for spec in args.configs:
    times, digests = {level: [] for level in args.levels}, set()
    for _ in range(args.rounds):
      for level in args.levels:
        seconds, digest = measure(spec, level)
        times[level].append(seconds)
        digests.add(digest)
    print(f"{spec}: init_state " + ", ".join(
        f"-O{level} " + " / ".join(f"{t:.1f}" for t in times[level]) + " s"
        for level in args.levels) +
          f"; parameters {'same' if len(digests) == 1 else 'DIFFER'}", flush=True)


if __name__ == "__main__":
  main()
