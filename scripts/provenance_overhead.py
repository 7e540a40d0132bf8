"""What marking costs a user: `deepjax swap --video` timed end to end with
`--provenance=all` and `--provenance=none`, in interleaved rounds.

    python scripts/provenance_overhead.py --workdir=runs/detection_matrix/gen/ae_train \
        --video=../shared/data/videos/lp_d10.mp4 --rounds 4

Each round runs both (the order alternates between rounds, so the machine's drift falls on
both alike) after one untimed warm-up of each (compilation cache). Prints each round's
wall and CPU seconds (the program's and ffmpeg's user + system time) and overheads, and the
median overheads; on a shared machine single rounds' wall times vary by several points,
so read the medians (the CPU figure beside the wall one drifts too on a VM), and the pooled
overhead (all rounds' seconds summed, marked over unmarked) with a bootstrap 90 % interval
over the rounds: the interval says whether the rounds settle a target. Then, in this process, the
parts of marking on the same clip (`time_parts`; `--rounds 0` prints only these).
`--checkout DIR` runs the deepjax of another checkout (e.g. `git worktree add /tmp/prev
REV`) to compare revisions.
"""
import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def timed_swap(checkout: str, workdir: str, video: str, provenance: str,
               out_dir: str) -> tuple:
  """(wall seconds, CPU seconds) of one `deepjax swap --video` run (raises when it fails).

  CPU seconds are the program's and its children's (ffmpeg) user + system time: what it
  computed, a second view of the cost (on a VM whose speed drifts, it drifts too)."""
  out = os.path.join(out_dir, f"out_{provenance}.mp4")
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  t0 = time.perf_counter()
  p = subprocess.run([sys.executable, "-m", "deepjax", "swap", f"--video={video}",
                      f"--workdir={workdir}", f"--output={out}", f"--provenance={provenance}"],
                     capture_output=True, text=True, cwd=checkout, check=False)
  if p.returncode:
    raise SystemExit(f"deepjax swap failed: {p.stderr.strip().splitlines()[-1:]}")
  wall = time.perf_counter() - t0
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return wall, cpu


def time_parts(checkout: str, video: str, out_dir: str, repeats: int = 3) -> None:
  """Prints the seconds of the parts of marking `video`'s frames with the deepjax of
  `checkout`: the first marking call (the mark's constants and its compile, or the load
  from the persistent cache, which this script turns on as the programs do), then warm:
  watermarking, H.264-encoding the marked frames against the unmarked ones (a mark is
  texture the encoder has to code; sizes of the two files too) and signing the mp4."""
  sys.path.insert(0, checkout)
  # pylint: disable=import-outside-toplevel
  from deepjax.cli.program import enable_compilation_cache
  from deepjax.data import video as video_io
  from deepjax.provenance import credentials, marking
  enable_compilation_cache()
  frames, fps = video_io.read_video(video)[:2]
  prov = marking.Provenance(source_type=credentials.COMPOSITE, model_family="ae",
                            fingerprint="5eed1234" * 8)
  t0 = time.perf_counter()
  list(prov.mark_stream(iter(frames[:16])))
  first = time.perf_counter() - t0
  marks, signs, encodes, sizes = [], [], {"marked": [], "unmarked": []}, {}
  path = os.path.join(out_dir, "signed.mp4")
  for _ in range(repeats):
    t0 = time.perf_counter()
    marked = list(prov.mark_stream(iter(frames)))
    marks.append(time.perf_counter() - t0)
    for name, clip in (("unmarked", frames), ("marked", marked)):
      t0 = time.perf_counter()
      video_io.write_video(path, clip, fps)
      encodes[name].append(time.perf_counter() - t0)
      sizes[name] = os.path.getsize(path) / 2 ** 20
    t0 = time.perf_counter()
    prov.sign(path, size=frames.shape[2:0:-1], ingredients=[video])
    signs.append(time.perf_counter() - t0)
  span = lambda ts: f"{min(ts):.2f}-{max(ts):.2f} s"  # noqa: E731
  print(f"in process: first marking call {first:.2f} s; warm, {repeats} runs: watermarking "
        f"{len(frames)} frames {span(marks)}, encoding them {span(encodes['marked'])} "
        f"({sizes['marked']:.1f} MB; unmarked {span(encodes['unmarked'])}, "
        f"{sizes['unmarked']:.1f} MB), signing the mp4 {span(signs)}")


def pooled(pairs: list, resamples: int = 2000, seed: int = 0) -> tuple:
  """(overhead, low, high): sum of the marked seconds over the sum of the unmarked ones,
  minus 1, over (marked, unmarked) `pairs`, with the 5th and 95th percentiles of the same
  over `resamples` bootstrap resamples of the rounds."""
  ratio = lambda ps: sum(a for a, _ in ps) / sum(b for _, b in ps) - 1  # noqa: E731
  rng = random.Random(seed)
  boot = sorted(ratio(rng.choices(pairs, k=len(pairs))) for _ in range(resamples))
  return ratio(pairs), boot[int(0.05 * resamples)], boot[int(0.95 * resamples) - 1]


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", required=True, help="a face-swap run folder")
  ap.add_argument("--video", required=True)
  ap.add_argument("--rounds", type=int, default=4, help="0: only the parts, in process")
  ap.add_argument("--checkout", default=ROOT, help="run the deepjax of this checkout")
  args = ap.parse_args()
  workdir, video = os.path.abspath(args.workdir), os.path.abspath(args.video)
  run = lambda mode, out_dir: timed_swap(args.checkout, workdir, video, mode, out_dir)  # noqa: E731
  with tempfile.TemporaryDirectory() as out_dir:
    for mode in ("all", "none") if args.rounds else ():
      run(mode, out_dir)
    pairs = {"wall": [], "CPU": []}  # (marked, unmarked) seconds per round
    for i in range(args.rounds):
      order = ("all", "none") if i % 2 == 0 else ("none", "all")
      secs = {mode: run(mode, out_dir) for mode in order}
      for j, name in enumerate(("wall", "CPU")):
        pairs[name].append((secs["all"][j], secs["none"][j]))
      (wa, wn), (ca, cn) = pairs["wall"][-1], pairs["CPU"][-1]
      print(f"round {i + 1}: all {wa:.1f} s, none {wn:.1f} s, overhead "
            f"{100 * (wa / wn - 1):+.1f} %; CPU time {ca:.1f} vs {cn:.1f} s, "
            f"{100 * (ca / cn - 1):+.1f} %", flush=True)
    for name, p in pairs.items():
      if p:
        r = [a / b - 1 for a, b in p]
        print(f"median {name} overhead {100 * statistics.median(r):+.1f} % over {args.rounds} "
              f"rounds (range {100 * min(r):+.1f} to {100 * max(r):+.1f} %)", flush=True)
        mid, low, high = pooled(p)
        print(f"pooled {name} overhead {100 * mid:+.1f} % (bootstrap 90 % interval over the "
              f"rounds {100 * low:+.1f} to {100 * high:+.1f} %)", flush=True)
    time_parts(args.checkout, video, out_dir)


if __name__ == "__main__":
  main()
