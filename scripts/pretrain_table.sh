#!/usr/bin/env bash
# Pretrain once on many faces, then fine-tune per pair (`--config.init_from=RUN`), against
# training the same pair from scratch for the same CPU budget (README, issue 17). The pair
# (A = lp_d0, B = lp_d6) and the gallery are those of scripts/real_footage_table.sh; the
# pretraining pool is other people of ../shared/data, none of them A, B or in the gallery.
# Stages (all by default, or name some in STAGES):
#   extract   A, B and the gallery (real_footage_table.sh's extract stage), and the pool:
#             every 3rd of the first 600 frames of each POOL_A clip into pool_a/, of each POOL_B
#             clip into pool_b/ (one folder per decoder; file names prefixed by the clip)
#   pretrain  CONFIG on pool_a / pool_b for PRETRAIN_MINUTES of wall time on both cores
#   train     "scratch" and "finetune" (init_from the pretrain run) on A / B, TRAIN_MINUTES
#             each, at the same time, each pinned to its own core (taskset)
#   evaluate, table: real_footage_table.sh's stages for MODELS="scratch finetune"
# Usage (repository root, venv active):  bash scripts/pretrain_table.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/pretrain_table}
CONFIG=${CONFIG:-faceswap_ae:tiny}
PRETRAIN_MINUTES=${PRETRAIN_MINUTES:-10}
TRAIN_MINUTES=${TRAIN_MINUTES:-5}
POOL_A=${POOL_A:-"lp_d11 lp_d14 lp_d19 lp_s13"}
POOL_B=${POOL_B:-"lp_d12 lp_d18 lp_s20 tpsmm_driving"}
STAGES=${STAGES:-"extract pretrain train evaluate table"}
has() { [[ " $STAGES " == *" $1 "* ]]; }
mkdir -p "$RUN"
common=(--config="configs/${CONFIG%%:*}.py:${CONFIG#*:}" --config.data.source=folders
        --config.num_steps=1000000 --config.log_every=50 --config.checkpoint_every=500
        --config.preview_every=500 --config.eval_every=1000000)

if has extract; then
  STAGES=extract RUN="$RUN" DATA="$DATA" bash scripts/real_footage_table.sh
  for side in a b; do
    clips=$POOL_A; [ "$side" = b ] && clips=$POOL_B
    for clip in $clips; do
      deepjax extract --input="$DATA/videos/$clip.mp4" --output="$RUN/clips/$clip" \
        --every_n_frames=3 --max_frames=600
    done
    # One folder per decoder: the clips' crops side by side, one alignments.json.
    python - "$RUN/pool_$side" $(for c in $clips; do echo "$RUN/clips/$c"; done) <<'PY'
import json, os, shutil, sys
out, folders = sys.argv[1], sys.argv[2:]
os.makedirs(out, exist_ok=True)
faces = []
for folder in folders:
  clip = os.path.basename(folder)
  with open(os.path.join(folder, "alignments.json")) as f:
    entries = json.load(f)["faces"]
  for e in entries:
    name = f"{clip}_{e['file']}"
    shutil.copy(os.path.join(folder, e["file"]), os.path.join(out, name))
    faces.append(dict(e, file=name))
with open(os.path.join(out, "alignments.json"), "w") as f:
  json.dump({"faces": faces}, f)
print(f"{out}: {len(faces)} crops from {len(folders)} clips")
PY
  done
fi

if has pretrain; then
  start=$(date +%s)
  timeout -s TERM "${PRETRAIN_MINUTES}m" deepjax train "${common[@]}" --workdir="$RUN/pretrain" \
    --config.data.a="$RUN/pool_a" --config.data.b="$RUN/pool_b" \
    > "$RUN/pretrain.train.log" 2>&1 || [ $? -eq 124 ]
  echo "pretrain: $(( $(date +%s) - start )) s wall on both cores" >> "$RUN/train_time.txt"
fi

if has train; then
  slot=0
  for name in scratch finetune; do
    init=""; [ "$name" = finetune ] && init="--config.init_from=$RUN/pretrain"
    (
      start=$(date +%s)
      timeout -s TERM "${TRAIN_MINUTES}m" taskset -c "$slot" deepjax train "${common[@]}" \
        --workdir="$RUN/$name" --config.data.a="$RUN/faces_a" --config.data.b="$RUN/faces_b" \
        $init > "$RUN/$name.train.log" 2>&1 || [ $? -eq 124 ]
      echo "$name: $(( $(date +%s) - start )) s wall on core $slot" >> "$RUN/train_time.txt"
    ) &
    slot=$(( slot + 1 ))
  done
  wait
fi

if has evaluate || has table; then
  stages=""; has evaluate && stages="evaluate"; has table && stages="$stages table"
  STAGES="$stages" MODELS="scratch finetune" RUN="$RUN" DATA="$DATA" \
    bash scripts/real_footage_table.sh
fi
