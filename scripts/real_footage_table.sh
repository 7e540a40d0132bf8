#!/usr/bin/env bash
# The real-footage swap quality table (README, issue 17): the seeds' model and the tiny AE,
# VAE and GAN trained for the same CPU budget on two real people of ../shared/data, then
# `deepjax evaluate --task=swap_real` on their held-out crops. Stages (all by default, or
# name some in STAGES):
#   extract  64 px aligned crops of A (lp_d0, every frame), B (lp_d6, every 3rd frame) and
#            four other people for the identity gallery (every 5th frame, at most 200)
#   train    each model in MODELS for TRAIN_MINUTES of wall time (SIGTERM: the loop saves
#            the step it is on), PARALLEL runs at a time, each pinned to its own CPU core
#            (taskset) so every model gets the same compute
#   evaluate deepjax evaluate --task=swap_real for each run -> RUN/<name>/swap_real.json
#   table    the markdown table of every run's swap rows (RUN/table.md)
# Usage (repository root, venv active):  bash scripts/real_footage_table.sh
#         STAGES="evaluate table" RUN=runs/real_table bash scripts/real_footage_table.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/real_table}
TRAIN_MINUTES=${TRAIN_MINUTES:-10}
MODELS=${MODELS:-"faceswap_ae:seeds faceswap_ae:tiny faceswap_vae:tiny faceswap_gan:tiny"}
PARALLEL=${PARALLEL:-2}
GALLERY_CLIPS=${GALLERY_CLIPS:-"lp_d3 lp_d9 lp_d10 lp_s18"}
STAGES=${STAGES:-"extract train evaluate table"}
has() { [[ " $STAGES " == *" $1 "* ]]; }
name_of() { echo "$1" | tr ':' '_'; }
mkdir -p "$RUN"

if has extract; then
  deepjax extract --input="$DATA/videos/lp_d0.mp4" --output="$RUN/faces_a"
  deepjax extract --input="$DATA/videos/lp_d6.mp4" --output="$RUN/faces_b" --every_n_frames=3
  for clip in $GALLERY_CLIPS; do
    deepjax extract --input="$DATA/videos/$clip.mp4" --output="$RUN/gallery_$clip" \
      --every_n_frames=5 --max_frames=200
  done
fi

if has train; then
  slot=0
  for model in $MODELS; do
    name=$(name_of "$model")
    (
      start=$(date +%s)
      # timeout sends SIGTERM: the loop finishes the step, checkpoints and exits 0.
      timeout -s TERM "${TRAIN_MINUTES}m" taskset -c "$slot" deepjax train \
        --config="configs/${model%%:*}.py:${model#*:}" --workdir="$RUN/$name" \
        --config.data.source=folders --config.data.a="$RUN/faces_a" \
        --config.data.b="$RUN/faces_b" --config.num_steps=1000000 --config.log_every=50 \
        --config.checkpoint_every=500 --config.preview_every=500 --config.eval_every=1000000 \
        > "$RUN/$name.train.log" 2>&1 || [ $? -eq 124 ]
      echo "$name: $(( $(date +%s) - start )) s wall on core $slot" >> "$RUN/train_time.txt"
    ) &
    slot=$(( (slot + 1) % PARALLEL ))
    if [ "$slot" -eq 0 ]; then wait; fi
  done
  wait
fi

if has evaluate; then
  gallery=$(for clip in $GALLERY_CLIPS; do printf '%s,' "$RUN/gallery_$clip"; done)
  for model in $MODELS; do
    name=$(name_of "$model")
    deepjax evaluate --task=swap_real --workdir="$RUN/$name" --gallery="${gallery%,}" \
      --output="$RUN/$name/swap_real.json"
  done
fi

if has table; then
  python - "$RUN" $MODELS <<'PY'
import json, os, sys
run, models = sys.argv[1], sys.argv[2:]
head = ("| model | steps | direction | retrieval % | dist. target / source | NME | jitter "
        "| found % | sharpness |\n|---|---:|---|---:|---|---:|---:|---:|---:|")
lines = [head]
for model in models:
  name = model.replace(":", "_")
  path = os.path.join(run, name, "swap_real.json")
  if not os.path.exists(path):
    lines.append(f"| {model} | | (not evaluated) | | | | | | |")
    continue
  with open(path) as f:
    res = json.load(f)
  steps = res.get("step", "")
  for direction in ("a2b", "b2a"):
    rows = res["results"][direction]
    for row in ("swap", "target_recon"):
      r = rows[row]
      label = direction.replace("2", "→").upper() + ("" if row == "swap" else " (target's own reconstruction)")
      lines.append(f"| {model} | {steps} | {label} | {r['retrieval']:.1f} | "
                   f"{r['dist_target']:.3f} / {r['dist_source']:.3f} | "
                   f"{r['nme']:.3f} | {r['jitter']:.3f} | {r['found']:.1f} | {r['sharpness']:.2f} |")
table = "\n".join(lines) + "\n"
with open(os.path.join(run, "table.md"), "w") as f:
  f.write(table)
print(table)
PY
fi
