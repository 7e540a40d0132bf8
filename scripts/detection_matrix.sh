#!/usr/bin/env bash
# The detection matrix of README (issue 15): detectors trained on SBI only, SBI + AE swaps,
# and SBI + every generator's fakes, scored on each generator's fakes of people whose footage
# was never in their training split, as written and after H.264 at CRF 23 and 28.
# Stages (all by default, or name some in STAGES):
#   extract     aligned 64 px crops of every clip in $DATA/videos (every 2nd frame, at most
#               $MAX_FRAMES frames read), one folder per clip = per person; 64 px animation
#               crops of every clip for the motion models
#   extract_dense  every frame of every clip (no MAX_FRAMES) -> $RUN/real_dense: more real
#               crops of the same people for the recipe stage (and the others' detectors with
#               TRAIN_REAL=real_dense)
#   generators  AE, VAE, GAN (tiny) on a pair of people per split in SWAP_SPLITS (training,
#               test; val: the validation pair VAL_PAIR of detector30val), FOMM and
#               TPSMM (tiny) on the training people's clips; each for GEN_MINUTES of wall
#               time on one core (SIGTERM: the loop saves the step it is on), two at a time
#   fakes       each swap model swaps both of its people's crops (image mode); each motion
#               model animates a photo (a clip's first frame) of a person with another
#               person's clip, four pairs per split; all with --provenance=none
#   reencode    CRF 23 and 28 copies of the test people's real and fake crop folders
#   recipe      the README's headline rows: configs/detect.py:tiny as it is (high-pass input,
#               framing jitter) on every frame's real crops ($RUN/real_dense, the extract_dense
#               stage) for RECIPE_ROWS (row:data; data sbi = SBI only, ae = + the AE training
#               swaps, all = + every generator's training fakes), each row as two seeds (0, 1)
#               side by side, one core each, DET30_MINUTES (30) each = the issue's 30 minutes
#               on 2 cores per row; VAL_PEOPLE held out and scored every VAL_EVERY steps (logged
#               only: the rows use the last checkpoint) -> det_<row>, det_<row>_s1; the
#               evaluate stage scores each and each pair's mean (rows ens_hpframe_s01,
#               ens_ae_hpframe_s01, ens_all_hpframe_s01)
#   detectors   configs/detect.py:tiny for each row (its data prepared first by deepjax
#               detect-data), DET_MINUTES of training on one core each (not in the default
#               STAGES since the recipe stage: the README's 10-minute rows)
#   detector30  the "all generators" row flips only (`:noaug`, as first measured) for the
#               issue's budget: DET30_MINUTES (30) on both cores -> det_sbi_all_30m_noaug
#               (not in the default STAGES)
#   detector30val  the same 30 minutes on both cores, with VAL_PEOPLE (training people)
#               moved to a validation split, with their swaps by the VAL_PAIR models
#               (VAL_SWAPS=0: their self-blends and animations only, as the rows
#               sbi_all_30m_val* were trained): the loop scores them every VAL_EVERY steps and
#               keeps the checkpoint with the best validation AUC -> det_$VAL_ROW (its last
#               checkpoint) and det_$VAL_ROW/best; VAL_FLAGS are added to its flags, e.g.
#               VAL_ROW=sbi_all_30m_val_noema VAL_FLAGS=--config.detect.ema_decay=0 (not in
#               the default STAGES); VAL_DATA=sbi trains on the real crops alone (validation:
#               the validation people's crops and self-blends), VAL_DATA=ae on them and the AE
#               swaps (validation: with the validation pair's AE swaps); VAL_CORE=0 (or 1) trains on
#               that core alone, so that two recipes run side by side in the 30 minutes
#   ensemble    ENS_MEMBERS detectors of the detector30val recipe (validation people and their
#               swaps, best checkpoint kept) with seeds ENS_SEED, ENS_SEED+1, ..., ENS_MINUTES
#               each on one core, two at a time (6 x 10 min = the issue's 30 minutes on both
#               cores) -> det_${ENS_ROW}_s<seed>; the evaluate stage scores their best
#               checkpoints together (mean fake probability) as the row $ENS_ROW;
#               ENS_DATA=sbi trains on the real crops alone (validation: the validation
#               people's crops and self-blends), ENS_CONFIG (e.g. ",noaug") is appended to the
#               config arguments (not in the default STAGES)
#   ablation    detector input augmentation (detect.augment): the three rows flips only
#               (`:noaug`), the all-generators row flips only with another seed, + blur/
#               resize/noise, and SBI only with all of it; DET_MINUTES each (not in the
#               default STAGES; the detectors stage's rows have framing + colour jitter)
#   evaluate    scripts/detection_matrix.py: the matrix -> $RUN/matrix.json, $RUN/matrix.md
#               (EVAL_ROWS="sbi_all_30m" scores only those rows, keeping the others)
# Every detector stage but recipe trains `configs/detect.py:tiny,plain` (DET_BASE=",plain"), the
# recipe their README rows were measured with, plus DET_CONFIG (",highpass": today's default).
# Usage (repository root, venv active):  bash scripts/detection_matrix.sh
#         STAGES="evaluate" RUN=runs/detection_matrix bash scripts/detection_matrix.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/detection_matrix}
MAX_FRAMES=${MAX_FRAMES:-400}
GEN_MINUTES=${GEN_MINUTES:-4}
DET_MINUTES=${DET_MINUTES:-10}
DET30_MINUTES=${DET30_MINUTES:-30}
ANIM_FRAMES=${ANIM_FRAMES:-100}
TRAIN_PAIR=${TRAIN_PAIR:-"lp_d10 lp_d14"}
TEST_PAIR=${TEST_PAIR:-"lp_d3 lp_d9"}
TEST2_PAIR=${TEST2_PAIR:-"lp_d12 lp_s18"}  # the other two test people: fakes none was read off
TEST_PEOPLE=${TEST_PEOPLE:-"lp_d3 lp_d9 lp_d12 lp_s18"}
VAL_PAIR=${VAL_PAIR:-"lp_d6 lp_s20"}  # training people held out to choose a checkpoint
VAL_PEOPLE=${VAL_PEOPLE:-$VAL_PAIR}
SWAP_SPLITS=${SWAP_SPLITS:-"train test"}  # a swap model per split, on its pair (and
# SWAP_SPLITS=val: VAL_PAIR's, whose swaps the detector30val and ensemble stages validate on)
# (SWAP_SPLITS=test2: swap models and fakes of TEST2_PAIR, scored by
# `python scripts/detection_matrix.py --fake_split=test2`; not in the default)
VAL_EVERY=${VAL_EVERY:-100}
VAL_ROW=${VAL_ROW:-sbi_all_30m_val}
ENS_ROW=${ENS_ROW:-ens6x10}
ENS_MEMBERS=${ENS_MEMBERS:-6}
ENS_MINUTES=${ENS_MINUTES:-10}
ENS_SEED=${ENS_SEED:-0}
# photo:driving pairs of the motion models' fakes (photo = the clip's first frame)
TRAIN_ANIM=${TRAIN_ANIM:-"lp_d10:lp_d14 lp_d14:lp_d11 lp_d6:lp_d19 lp_s13:lp_d18"}
TEST_ANIM=${TEST_ANIM:-"lp_d3:lp_d9 lp_d9:lp_d12 lp_d12:lp_d3 lp_s18:lp_d9"}
SWAPS=${SWAPS:-"ae vae gan"}
MOTION=${MOTION-"fomm tpsmm"}  # MOTION= (empty) leaves the motion models out
DET_ROWS=${DET_ROWS:-"sbi sbi_ae sbi_all"}  # the detectors stage's rows
TRAIN_REAL=${TRAIN_REAL:-real}  # the detectors' real crops: $RUN/$TRAIN_REAL/<clip>
# (the matrix scores the test people's crops in $RUN/real whatever the detector trained on)
RECIPE_ROWS=${RECIPE_ROWS:-"sbi_dense_hpframe:sbi ae_hpframe:ae all_hpframe:all"}
DET_BASE=${DET_BASE-,plain}  # appended to configs/detect.py:tiny before DET_CONFIG
STAGES=${STAGES:-"extract extract_dense generators fakes reencode recipe evaluate"}
has() { [[ " $STAGES " == *" $1 "* ]]; }
pair_of() { case $1 in train) echo "$TRAIN_PAIR";; test) echo "$TEST_PAIR";; test2) echo "$TEST2_PAIR";; val) echo "$VAL_PAIR";; esac; }
clips() { for f in "$DATA"/videos/*.mp4; do basename "$f" .mp4; done; }
mkdir -p "$RUN"/real "$RUN"/gen "$RUN"/fakes "$RUN"/photos "$RUN"/logs

# Aligned crops of every clip into $RUN/$1/<clip>, two clips at a time; $2: more flags
# of deepjax extract (word-split).
extract_clips() {
  clips | xargs -P 2 -I{} sh -c 'deepjax extract --input="$0/videos/{}.mp4" \
    --output="$1/$2/{}" $3 > "$1/logs/extract_$2_{}.log" 2>&1' "$DATA" "$RUN" "$1" "$2"
}
# Runs "$@" on core $1 for $2 minutes; SIGTERM at the end (the loop saves and exits 0).
timed() {
  local core=$1 minutes=$2; shift 2
  timeout -s TERM "${minutes}m" taskset -c "$core" "$@" || [ $? -eq 124 ]
}
# Runs "$@" in the background with $slot naming its core (0 or 1), two jobs at a time; the
# caller waits for the last ones.
slot=0
spawn() {
  "$@" &
  slot=$(( (slot + 1) % 2 ))
  if [ "$slot" -eq 0 ]; then wait; fi
}

if has extract; then
  extract_clips real "--every_n_frames=2 --max_frames=$MAX_FRAMES"
  deepjax extract --for=animation --input="$DATA/videos" --output="$RUN/anim" --size=64 \
    --every_n_frames=10 --max_frames=300 > "$RUN/logs/extract_anim.log" 2>&1
  for clip in $(clips); do
    python -c "import sys; from deepjax.data import video, images; \
images.write_image(sys.argv[2], video.read_video(sys.argv[1], max_frames=1)[0][0])" \
      "$DATA/videos/$clip.mp4" "$RUN/photos/$clip.png"
  done
fi

if has extract_dense; then
  extract_clips real_dense ""
fi

if has generators; then
  jobs_list=()
  for fam in $SWAPS; do
    for split in $SWAP_SPLITS; do
      set -- $(pair_of "$split")
      jobs_list+=("swap $fam $split $1 $2")
    done
  done
  for m in $MOTION; do jobs_list+=("motion $m"); done
  held=$(for p in $TEST_PEOPLE; do printf "'%s.mp4'," "$p"; done)
  gen_job() {  # swap FAMILY SPLIT A B | motion MODEL, on core $slot
    if [ "$1" = swap ]; then
      timed "$slot" "$GEN_MINUTES" deepjax train --config="configs/faceswap_$2.py:tiny" \
        --workdir="$RUN/gen/$2_$3" --config.data.source=folders \
        --config.data.a="$RUN/real/$4" --config.data.b="$RUN/real/$5" \
        --config.num_steps=1000000 --config.log_every=50 --config.checkpoint_every=200 \
        --config.preview_every=1000000 --config.eval_every=1000000 > "$RUN/logs/gen_$2_$3.log" 2>&1
    else
      timed "$slot" "$GEN_MINUTES" deepjax train --config="configs/$2_vox256.py:tiny" \
        --workdir="$RUN/gen/$2" --config.data.video_dir="$RUN/anim" \
        --config.data.held_out="(${held})" --config.num_steps=1000000 --config.log_every=20 \
        --config.checkpoint_every=100 --config.preview_every=1000000 > "$RUN/logs/gen_$2.log" 2>&1
    fi
  }
  for job in "${jobs_list[@]}"; do
    spawn gen_job $job
  done
  wait
fi

if has fakes; then
  for fam in $SWAPS; do
    for split in $SWAP_SPLITS; do
      set -- $(pair_of "$split")
      deepjax swap --workdir="$RUN/gen/${fam}_$split" --input="$RUN/real/$1" --direction=a2b \
        --output="$RUN/fakes/${fam}_${split}_$1" --provenance=none > "$RUN/logs/fake_${fam}_${split}_a.log" 2>&1
      deepjax swap --workdir="$RUN/gen/${fam}_$split" --input="$RUN/real/$2" --direction=b2a \
        --output="$RUN/fakes/${fam}_${split}_$2" --provenance=none > "$RUN/logs/fake_${fam}_${split}_b.log" 2>&1
    done
  done
  for m in $MOTION; do
    for split in train test; do
      combos=$TRAIN_ANIM; [ "$split" = test ] && combos=$TEST_ANIM
      for combo in $combos; do
        photo=${combo%%:*}; driving=${combo#*:}
        deepjax animate --workdir="$RUN/gen/$m" --source="$RUN/photos/$photo.png" \
          --driving="$DATA/videos/$driving.mp4" --max_frames="$ANIM_FRAMES" --provenance=none \
          --output="$RUN/fakes/${m}_${split}_${photo}_by_${driving}" > "$RUN/logs/fake_${m}_${photo}.log" 2>&1
      done
    done
  done
fi

if has reencode; then
  python - "$RUN" $TEST_PEOPLE <<'PY'
import glob, os, sys
from deepjax.eval.reencode import reencode_folder
run, people = sys.argv[1], sys.argv[2:]
folders = [os.path.join(run, "real", p) for p in people]
folders += sorted(glob.glob(os.path.join(run, "fakes", "*_test*_*")))  # test and test2
for crf in (23, 28):
  for src in folders:
    dst = os.path.join(run, f"crf{crf}", os.path.relpath(src, run))
    print(f"CRF {crf}: {src} -> {dst} ({reencode_folder(src, dst, crf)} crops)")
PY
fi

real=$(for c in $(clips); do printf 'real:%s+' "$RUN/$TRAIN_REAL/$c"; done)
fakes_of() { for g in "$@"; do for f in "$RUN"/fakes/"${g}"_train_*; do printf '%s:%s+' "$g" "$f"; done; done; }
test_ids="($(for p in $TEST_PEOPLE; do printf "'%s'," "$p"; done))"
# Trains a detector on folders $1 into $RUN/det_$2, run through the command prefix "${@:3}"
# (`timed CORE MINUTES` or `timeout ...`); its log: $RUN/logs/det_$2.log.
# DET_BASE and DET_CONFIG (e.g. ",noaug") are appended to the config arguments, DET_FLAGS
# (words) to the flags.
train_detector() {
  local folders=$1 row=$2; shift 2
  # shellcheck disable=SC2086
  "$@" deepjax train --config="configs/detect.py:tiny$DET_BASE${DET_CONFIG:-},folders=${folders%+}" \
    --workdir="$RUN/det_$row" --config.data.test_identities="$test_ids" \
    --config.num_steps=1000000 --config.checkpoint_every=200 --config.preview_every=1000000 \
    --config.eval_every=1000000 ${DET_FLAGS:-} > "$RUN/logs/det_$row.log" 2>&1
}
if has detectors; then
  declare -A rows=([sbi]="$real" [sbi_ae]="$real$(fakes_of ae)"
                   [sbi_all]="$real$(fakes_of $SWAPS $MOTION)")
  for row in $DET_ROWS; do   # data prepared before the timed training
    folders=${rows[$row]}
    deepjax detect-data --config="configs/detect.py:tiny,folders=${folders%+}" \
      --config.data.test_identities="$test_ids" > "$RUN/logs/data_$row.log" 2>&1
  done
  det_job() {  # FOLDERS ROW, on core $slot
    train_detector "$1" "$2" timed "$slot" "$DET_MINUTES"
    echo "det_$2: trained $DET_MINUTES min on core $slot" >> "$RUN/train_time.txt"
  }
  for row in $DET_ROWS; do
    spawn det_job "${rows[$row]}" "$row"
  done
  wait
fi

if has detector30; then
  folders="$real$(fakes_of $SWAPS $MOTION)"
  start=$(date +%s)
  DET_CONFIG=",noaug" train_detector "$folders" sbi_all_30m_noaug \
    timeout -s TERM "${DET30_MINUTES}m" || [ $? -eq 124 ]
  echo "det_sbi_all_30m_noaug: $(( $(date +%s) - start )) s on both cores" >> "$RUN/train_time.txt"
fi

val_swaps() {  # the validation pair's swaps by generators "$@" (default: SWAPS; made by models
  # of their own), unless VAL_SWAPS=0
  [ "${VAL_SWAPS:-1}" = 1 ] || return 0
  for g in ${*:-$SWAPS}; do for f in "$RUN"/fakes/"${g}"_val_*; do
    if [ -d "$f" ]; then printf '%s:%s+' "$g" "$f"; fi
  done; done
}
val_folders="$real$(fakes_of $SWAPS $MOTION)$(val_swaps)"
val_ids="($(for p in $VAL_PEOPLE; do printf "'%s'," "$p"; done))"
val_flags="--config.data.val_identities=$val_ids --config.eval_split=validation \
--config.keep_best=auc --config.eval_every=$VAL_EVERY --config.eval_batches=1000"
prepare_val_data() {  # $1: the log's name
  deepjax detect-data --config="configs/detect.py:tiny$DET_BASE${DET_CONFIG:-},folders=${val_folders%+}" \
    --config.data.test_identities="$test_ids" --config.data.val_identities="$val_ids" \
    > "$RUN/logs/data_$1.log" 2>&1
}
if has detector30val; then
  case "${VAL_DATA:-all}" in
    sbi) val_folders=$real ;;
    ae) val_folders="$real$(fakes_of ae)$(val_swaps ae)" ;;
  esac
  prepare_val_data "$VAL_ROW"
  start=$(date +%s)
  runner=(timeout -s TERM "${DET30_MINUTES}m")  # both cores
  if [ -n "${VAL_CORE:-}" ]; then  # one core: two recipes side by side share the budget
    runner=(timed "$VAL_CORE" "$DET30_MINUTES")
  fi
  DET_FLAGS="$val_flags ${VAL_FLAGS:-}" \
    train_detector "$val_folders" "$VAL_ROW" "${runner[@]}" || [ $? -eq 124 ]
  echo "det_$VAL_ROW: $(( $(date +%s) - start )) s on ${VAL_CORE:+core }${VAL_CORE:-both cores}" \
    "${DET_CONFIG:-} ${VAL_FLAGS:-}" >> "$RUN/train_time.txt"
fi

if has recipe; then
  dense=$(for c in $(clips); do printf 'real:%s+' "$RUN/real_dense/$c"; done)
  recipe_job() {  # FOLDERS ROW SEED, on core $slot
    local row=$2; [ "$3" = 0 ] || row="$2_s$3"
    DET_BASE= DET_FLAGS="$val_flags --config.seed=$3" \
      train_detector "$1" "$row" timed "$slot" "$DET30_MINUTES"
    echo "det_$row: $DET30_MINUTES min on core $slot (recipe)" >> "$RUN/train_time.txt"
  }
  for spec in $RECIPE_ROWS; do
    case ${spec#*:} in
      sbi) val_folders=$dense ;;
      ae) val_folders="$dense$(fakes_of ae)" ;;
      all) val_folders="$dense$(fakes_of $SWAPS $MOTION)" ;;
      *) echo "RECIPE_ROWS: unknown data '${spec#*:}' (sbi, ae or all)" >&2; exit 2 ;;
    esac
    DET_BASE= prepare_val_data "${spec%%:*}"  # once, before both seeds train on it
    spawn recipe_job "$val_folders" "${spec%%:*}" 0
    spawn recipe_job "$val_folders" "${spec%%:*}" 1
  done
fi

if has ensemble; then
  if [ "${ENS_DATA:-all}" = sbi ]; then val_folders=$real; fi
  DET_CONFIG=${ENS_CONFIG:-} prepare_val_data "$ENS_ROW"
  start=$(date +%s)
  member_job() {  # SEED, on core $slot
    DET_CONFIG=${ENS_CONFIG:-} DET_FLAGS="$val_flags --config.seed=$1 ${VAL_FLAGS:-}" \
      train_detector "$val_folders" "${ENS_ROW}_s$1" timed "$slot" "$ENS_MINUTES"
  }
  for seed in $(seq "$ENS_SEED" $(( ENS_SEED + ENS_MEMBERS - 1 ))); do
    spawn member_job "$seed"
  done
  wait
  echo "det_${ENS_ROW}_s*: $ENS_MEMBERS x $ENS_MINUTES min on one core, two at a time:" \
    "$(( $(date +%s) - start )) s ${ENS_DATA:-all} ${ENS_CONFIG:-} ${VAL_FLAGS:-}" \
    >> "$RUN/train_time.txt"
fi

if has ablation; then  # detect.augment, measured (README): DET_MINUTES each, two at a time
  all="$real$(fakes_of $SWAPS $MOTION)"
  quality="--config.detect.augment.quality_prob=0.5 --config.detect.augment.noise=0.02"
  ablation_job() {  # FOLDERS ROW CONFIG FLAGS, on core $slot
    DET_CONFIG=$3 DET_FLAGS=$4 train_detector "$1" "$2" timed "$slot" "$DET_MINUTES"
  }
  spawn ablation_job "$real" sbi_noaug ",noaug" ""
  spawn ablation_job "$real$(fakes_of ae)" sbi_ae_noaug ",noaug" ""
  spawn ablation_job "$all" sbi_all_noaug ",noaug" ""
  spawn ablation_job "$all" sbi_all_noaug_s1 ",noaug" "--config.seed=1"
  spawn ablation_job "$all" sbi_all_aug "" "$quality"
  spawn ablation_job "$real" sbi_aug "" "$quality"
  wait
fi

if has evaluate; then
  python scripts/detection_matrix.py --run="$RUN" --test_people="$TEST_PEOPLE" \
    --generators="$SWAPS $MOTION" --rows="${EVAL_ROWS:-}"
fi
