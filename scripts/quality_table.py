"""Swap-quality table of the face-swap families, trained alike on CPU.

    python scripts/quality_table.py [--steps=300] [--batch=16] [--root=/tmp/deepjax_quality]
                                    [--output=docs/quality_table.md] [--models=seeds,ae,vae,gan]

Trains the seed article's tiny model, the Original-class AE, VAE and GAN at 64
px on the same two synthetic identities (same data, resolution, batch and
number of steps, so the same number of images seen), evaluates each with
`deepjax evaluate`'s swap evaluation (held-out clip, exact ground
truth, landmark regressor) and writes a markdown table (--output) and JSON
(same name, .json). Reruns resume finished runs from their checkpoints.
"""
import argparse
import json
import os
import sys
import time

# name -> (config file, argument, learning rate, label). The Original-class models use
# lr 1e-4 with global-norm clipping at 1.0: at 3e-4 without clipping the AE diverged after
# ~150 steps (loss 0.01 -> 0.5, outputs saturated) in the first run of this script.
MODELS = {
    "seeds": ("faceswap_ae", "seeds", 1e-3, "seeds' tiny model (AE)"),
    "ae": ("faceswap_ae", "original", 1e-4, "Original-class AE"),
    "vae": ("faceswap_vae", "original", 1e-4, "Original-class VAE"),
    "gan": ("faceswap_gan", "original", 1e-4, "Original-class GAN (mask)"),
}
CLIP_NORM = {"ae": 1.0, "vae": 1.0, "gan": 1.0}


def build_config(name, steps, batch):
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  file, arg, lr, _ = MODELS[name]
  c = load_config(file, f"{arg},steps={steps},batch={batch}")
  with c.unlocked():
    c.data.size = 64
    c.data.num_train = 1024
    c.data.num_test = 64
    c.optimizer.learning_rate = lr
    c.optimizer.clip_norm = CLIP_NORM.get(name, 0.0)
    if "gan" in c:
      c.gan.disc_optimizer.learning_rate = lr
    if "vae" in c:
      c.vae.warmup_steps = max(1, steps // 4)
    c.log_every = max(1, steps // 10)
    c.checkpoint_every = steps
    c.preview_every = steps
  return c


def train_once(loop, config, workdir):
  """Trains (or resumes) `workdir`; -> seconds the training took.

  The time is kept in `workdir/train_seconds.json` when training ends, so a
  rerun that finds the run finished (and only re-evaluates it) reports the
  time of the run that trained it, not the seconds of the resume.
  """
  record = os.path.join(workdir, "train_seconds.json")
  t = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  seconds = time.perf_counter() - t
  if os.path.exists(record):  # trained by an earlier run; this one only restored it
    with open(record) as f:
      return json.load(f)["train_seconds"]
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  write_text_atomic(record, json.dumps({"train_seconds": seconds}))
  return seconds


def param_count(workdir):
  import jax  # pylint: disable=import-outside-toplevel
  from deepjax.loading import load  # pylint: disable=import-outside-toplevel
  _, params, _ = load(workdir)
  return sum(int(x.size) for x in jax.tree.leaves(params))


def summarise(report):
  r = report["results"]
  mean = lambda row, k: (r["a2b"][row][k] + r["b2a"][row][k]) / 2
  out = {row: {k: mean(row, k) for k in ("psnr", "ssim", "l1", "face_psnr", "nme")}
         for row in r["a2b"] if row != "ground_truth"}
  out["ground_truth"] = {"nme": mean("ground_truth", "nme")}
  return out


def markdown(rows, args, total_s):
  lines = [f"Swap quality on a held-out synthetic clip ({rows[0]['frames']} frames, A->B and "
           "B->A averaged; exact ground truth). All models: 64 px, same two synthetic "
           f"identities and data, batch {args.batch}, {args.steps} steps "
           f"({args.batch * args.steps} examples of each identity seen), CPU. PSNR over the "
           "whole frame and inside the ground truth's face region (jaw + brows polygon of its "
           "landmarks).", "",
           "| model | params | train s | PSNR dB | face PSNR dB | SSIM | L1 | landmark NME | "
           "vs seeds: PSNR | vs seeds: face PSNR | vs seeds: NME |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  seeds = next((r for r in rows if r["name"] == "seeds"), None)
  db = lambda v: "exact" if v >= 99.0 else f"{v:.2f}"  # 100 dB = the 1e-10 MSE floor
  row = lambda label, m, extra="| | | |": (
      f"| {label} | {m['psnr']:.2f} | {db(m['face_psnr'])} | {m['ssim']:.3f} | {m['l1']:.4f} | "
      f"{m['nme']:.4f} {extra}")
  for r in rows:
    m = r["summary"]["model"]
    if seeds and r is not seeds:
      s = seeds["summary"]["model"]
      extra = (f"| {m['psnr'] - s['psnr']:+.2f} dB | {m['face_psnr'] - s['face_psnr']:+.2f} dB | "
               f"{m['nme'] - s['nme']:+.4f} ({100 * (m['nme'] - s['nme']) / s['nme']:+.0f} %) |")
    else:
      extra = "| - | - | - |"
    lines.append(row(f"{r['label']} | {r['params'] / 1e6:.2f} M | {r['train_seconds']:.0f}", m,
                     extra))
    if "model_raw" in r["summary"]:
      lines.append(row("... same GAN, raw decoder RGB (no mask blend) | |",
                       r["summary"]["model_raw"]))
  base = rows[0]["summary"]
  for key, label in (("input", "baseline: input face unchanged"),
                     ("mean_face", "baseline: target's mean face"),
                     ("face_paste", "reference: ground truth's face region pasted into the "
                                    "input (cap of a face-only swap on the whole frame)")):
    if key in base:
      lines.append(row(f"{label} | |", base[key]))
  lines.append(f"| landmark regressor on the ground truth (floor of NME) | | | | | | | "
               f"{base['ground_truth']['nme']:.4f} | | | |")
  lm = rows[0]["landmark_regressor"]["test"]["sharp"]
  lines += ["", "Landmark NME: mean landmark distance / outer inter-ocular distance between the "
            "landmarks a small CNN regressor (deepjax/eval/landmark_regressor.py, trained on "
            "other synthetic identities) finds in the output and the renderer's landmarks of the "
            f"ground truth. The regressor's own error on unseen synthetic faces: NME "
            f"{lm['nme_mean']:.4f} ({lm['pixels_mean']:.2f} px at 64 px).",
            "",
            f"Training, all models: {sum(r['train_seconds'] for r in rows) / 60:.1f} min (the "
            "train s column: each model's training time is kept in its workdir, so a rerun that "
            "finds a model trained only evaluates it and keeps the time of the run that "
            f"trained it); evaluation, all models: "
            f"{sum(r.get('eval_seconds', 0.0) for r in rows) / 60:.1f} min; this invocation: "
            f"{total_s / 60:.1f} min. Command:",
            "", "```", f"python scripts/quality_table.py --steps={args.steps} "
            f"--batch={args.batch} --models={','.join(args.models)}", "```"]
  return "\n".join(lines) + "\n"


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--root", default="/tmp/deepjax_quality")
  p.add_argument("--output", default="docs/quality_table.md")
  p.add_argument("--models", default="seeds,ae,vae,gan")
  p.add_argument("--frames", type=int, default=64)
  args = p.parse_args()
  args.models = [m.strip() for m in args.models.split(",") if m.strip()]
  bad = [m for m in args.models if m not in MODELS]
  if bad:
    sys.exit(f"error: unknown models {bad}; known: {', '.join(MODELS)}")
  from deepjax.cli import program  # pylint: disable=import-outside-toplevel
  program.enable_compilation_cache()
  from deepjax.eval import swap_quality  # pylint: disable=import-outside-toplevel
  from deepjax.io_utils import write_text_atomic  # pylint: disable=import-outside-toplevel
  from deepjax.train import loop  # pylint: disable=import-outside-toplevel
  t_all = time.perf_counter()
  rows = []
  for name in args.models:
    workdir = os.path.join(args.root, f"{name}_s{args.steps}_b{args.batch}")
    config = build_config(name, args.steps, args.batch)
    print(f"== {name}: training {MODELS[name][3]} in {workdir}", flush=True)
    train_s = train_once(loop, config, workdir)
    t = time.perf_counter()
    report = swap_quality.evaluate(workdir, args.frames)
    eval_s = time.perf_counter() - t
    print(swap_quality.format_table(report), flush=True)
    rows.append({"name": name, "label": MODELS[name][3], "config": f"{MODELS[name][0]}:"
                 f"{MODELS[name][1]}", "learning_rate": MODELS[name][2],
                 "params": param_count(workdir), "train_seconds": train_s, "eval_seconds": eval_s,
                 "frames": args.frames, "summary": summarise(report),
                 "results": report["results"],
                 "landmark_regressor": report["landmark_regressor"]})
  total_s = time.perf_counter() - t_all
  md = markdown(rows, args, total_s)
  write_text_atomic(args.output, md)
  write_text_atomic(os.path.splitext(args.output)[0] + ".json",
                    json.dumps({"steps": args.steps, "batch": args.batch,
                                "total_seconds": total_s, "rows": rows}, indent=2))
  print(md)


if __name__ == "__main__":
  main()
