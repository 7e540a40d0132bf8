#!/usr/bin/env bash
# CPU recipe for a motion model (CONFIG, default configs/fomm_vox256.py:tiny, 64 px; TPSMM:
# CONFIG=configs/tpsmm_vox256.py:tiny) on the real clips of ../shared/data/videos. Stages (run all by default, or name some in STAGES):
#   extract  square face crops of every clip (deepjax extract --for=animation)
#   train    CONFIG on all clips but the held-out ones, stopped after TRAIN_MINUTES
#            (SIGTERM: the loop saves the step it is on; rerunning resumes)
#   evaluate reconstruction metrics on the held-out clips (deepjax evaluate)
#   untrained the same evaluation of the model at its random initialisation (same config,
#            seed 0): what training has added
#   animate  a photo driven by a held-out clip (deepjax animate)
#   gif      a small GIF of driving | animation for the docs
# Usage: scripts/train_motion_cpu.sh            (from the repository root)
#        STAGES="evaluate animate" TRAIN_MINUTES=20 RUN=runs/fomm_cpu scripts/train_motion_cpu.sh
#        CONFIG=configs/tpsmm_vox256.py:tiny RUN=runs/tpsmm_cpu scripts/train_motion_cpu.sh
# CROPS=DIR reuses the crops of an earlier extract stage (then leave extract out of STAGES).
set -euo pipefail
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/fomm_cpu}
CONFIG=${CONFIG:-configs/fomm_vox256.py:tiny}
CROPS=${CROPS:-$RUN/crops}
TRAIN_MINUTES=${TRAIN_MINUTES:-25}
STEPS=${STEPS:-3000}
HELD_OUT=${HELD_OUT:-"lp_d18.mp4,lp_d19.mp4"}
PHOTO=${PHOTO:-$DATA/photos/tpsmm_source.png}
DRIVING=${DRIVING:-lp_d18.mp4}
STAGES=${STAGES:-"extract train evaluate animate gif"}
held_tuple="($(echo "$HELD_OUT" | sed "s/\([^,]*\)/'\1'/g"),)"
mkdir -p "$RUN"

has() { [[ " $STAGES " == *" $1 "* ]]; }

if has extract; then
  # 64 px crops; face boxes from every 10th frame; at most 300 frames per clip.
  deepjax extract --for=animation --input="$DATA/videos" --output="$CROPS" \
    --size=64 --every_n_frames=10 --max_frames=300
fi
if has train; then
  start=$(date +%s)
  # timeout sends SIGTERM: the loop finishes the step, checkpoints and exits 0.
  timeout -s TERM "${TRAIN_MINUTES}m" deepjax train --config="$CONFIG" \
    --workdir="$RUN/model" --config.num_steps="$STEPS" --config.data.video_dir="$CROPS" \
    --config.data.held_out="$held_tuple" --config.log_every=20 --config.checkpoint_every=200 \
    --config.preview_every=200 || [ $? -eq 124 ]
  echo "training wall time: $(( $(date +%s) - start )) s" | tee -a "$RUN/train_time.txt"
fi
if has evaluate; then
  deepjax evaluate --task=reconstruction --workdir="$RUN/model" \
    --output="$RUN/reconstruction.json"
fi
if has untrained; then
  python - "$RUN" <<'PY'
import sys
import jax
from deepjax import loading
from deepjax.convert.fomm import write_run
run = sys.argv[1]
config = loading.read_config(f"{run}/model")
size = int(config.data.size)
model = loading.build_model(config)
write_run(f"{run}/untrained", model.init(jax.random.key(int(config.seed)), (1, size, size, 3)),
          config)
PY
  deepjax evaluate --task=reconstruction --workdir="$RUN/untrained" \
    --output="$RUN/reconstruction_untrained.json"
fi
if has animate; then
  deepjax animate --workdir="$RUN/model" --source="$PHOTO" \
    --driving="$DATA/videos/$DRIVING" --output="$RUN/animation.mp4"
fi
if has gif; then
  python - "$RUN" "$DATA/videos/$DRIVING" "$CROPS" <<'PY'
import sys
import numpy as np
from PIL import Image
from deepjax.data import video
run, driving, crops = sys.argv[1], sys.argv[2], sys.argv[3]
anim, fps, _ = video.read_video(f"{run}/animation.mp4")
drv, _, _ = video.read_video(f"{crops}/{driving.rsplit('/', 1)[-1]}")
n = min(len(anim), len(drv), 75)
size = anim.shape[1]
frames = [Image.fromarray(np.concatenate(
    [np.asarray(Image.fromarray(drv[i]).resize((size, size))), anim[i]], 1))
    for i in range(0, n, 2)]
frames[0].save(f"{run}/animation.gif", save_all=True, append_images=frames[1:],
               duration=int(2000 / fps), loop=0)
print(f"wrote {run}/animation.gif ({len(frames)} frames)")
PY
fi
