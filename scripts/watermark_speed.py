"""Time `watermark.embed` against the version at a git revision, in one process.

    nice -n 10 python scripts/watermark_speed.py --ref main --frames 32 --size 512

Loads deepjax/provenance/watermark.py, watermark_ops.py and watermark_code.py as they are at
`--ref` (git show) next to the working tree's, marks the same uint8 frames (the `deepjax
bench --rows=provenance` pattern, or the first frames of `--video`) with both, alternating,
and prints the best and median seconds per call of each, and how far their marked frames
differ. `--detect` times what `deepjax verify` does with a video instead: `detect_clip` on
the frames each version marked and `detect_frames` on 4 of them.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from deepjax.bench.provenance import _frames  # pylint: disable=wrong-import-position,protected-access
from deepjax.provenance import watermark  # pylint: disable=wrong-import-position


def load_at(rev, name):
  """deepjax/provenance/NAME.py as it is at git revision REV, as a module."""
  src = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:deepjax/provenance/{name}.py"],
                       check=True, capture_output=True, text=True).stdout
  with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
    f.write(src)
  spec = importlib.util.spec_from_file_location(f"{name}_ref", f.name)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_ref(rev):
  """The watermark module at REV, using its own revision's helpers (watermark_ops,
  watermark_code), which it imports from the package while it loads."""
  import deepjax.provenance as package  # pylint: disable=import-outside-toplevel
  helpers = {name: load_at(rev, name) for name in ("watermark_ops", "watermark_code")}
  saved = {name: getattr(package, name, None) for name in helpers}
  try:
    for name, module in helpers.items():
      setattr(package, name, module)
      sys.modules[f"deepjax.provenance.{name}"] = module
    return load_at(rev, "watermark")
  finally:
    for name, module in saved.items():
      setattr(package, name, module)
      sys.modules[f"deepjax.provenance.{name}"] = module


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--ref", default="main", help="git revision of the reference version")
  ap.add_argument("--frames", type=int, default=32)
  ap.add_argument("--size", type=int, default=512)
  ap.add_argument("--video", default=None, help="mark this video's first frames instead")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--detect", action="store_true", help="time detection instead of marking")
  args = ap.parse_args()
  clip = _frames(args.video, args.frames, args.size)
  payload = 0x5EED1234
  modules = {"ref " + args.ref: load_ref(args.ref), "new": watermark}
  impls = {name: m.embed for name, m in modules.items()}
  outs = {name: fn(clip, payload) for name, fn in impls.items()}  # compile
  if args.detect:
    impls = {name: (lambda _, __, m=m, x=outs[name]: (m.detect_clip(x), m.detect_frames(x[::len(x) // 4][:4])))
             for name, m in modules.items()}
    for name, fn in impls.items():
      clip_det, frame_dets = fn(None, None)
      print(f"  {name}: clip payload {clip_det.payload == payload}, frames "
            f"{sum(d.payload == payload for d in frame_dets)}/4")
  times = {name: [] for name in impls}
  for _ in range(args.repeats):
    for name, fn in impls.items():
      t0 = time.perf_counter()
      fn(clip, payload)
      times[name].append(time.perf_counter() - t0)
  print(f"{'detecting' if args.detect else 'marking'} {len(clip)} frames "
        f"{clip.shape[2]}x{clip.shape[1]}, {args.repeats} alternating calls")
  for name, ts in times.items():
    print(f"  {name:12s} best {min(ts):.3f} s  median {np.median(ts):.3f} s  "
          f"({1000 * np.median(ts) / len(clip):.1f} ms/frame)")
  a, b = (o.astype(np.int16) for o in outs.values())
  print(f"  marked frames differ: max |diff| {np.abs(a - b).max()} levels, "
        f"{100 * np.mean(a != b):.3f}% of samples")


if __name__ == "__main__":
  main()
