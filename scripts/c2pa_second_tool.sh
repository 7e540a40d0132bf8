#!/usr/bin/env bash
# Content Credentials of a swapped and an animated mp4, checked by two validators:
# c2pa's own reader (`deepjax verify`) and c2pa-ts (tools/c2pa-ts, an independent
# implementation), before and after one byte of video is changed.
#
#   bash scripts/c2pa_second_tool.sh SWAP_RUN MOTION_RUN [OUT]
#
# SWAP_RUN: a trained swap run folder; MOTION_RUN: a trained FOMM/TPSMM run folder (e.g.
# runs/detection_matrix/gen/ae_train and runs/detection_matrix/gen/fomm from
# scripts/detection_matrix.sh). Needs ../shared/data and `npm install --prefix tools/c2pa-ts`.
set -euo pipefail
SWAP_RUN=${1:?swap run folder}; MOTION_RUN=${2:?motion run folder}; OUT=${3:-/tmp/c2pa_second_tool}
DATA=${DATA:-../shared/data}
TOOL=$(dirname "$0")/../tools/c2pa-ts
[ -d "$TOOL/node_modules" ] || npm install --prefix "$TOOL" --ignore-scripts --no-audit --no-fund --silent
mkdir -p "$OUT"
deepjax swap --workdir="$SWAP_RUN" --video="$DATA/videos/lp_d0.mp4" --max_frames=48 \
  --output="$OUT/swap.mp4" > "$OUT/swap.log" 2>&1
python -c "import imageio.v3 as iio,sys; iio.imwrite(sys.argv[2], next(iio.imiter(sys.argv[1])))" \
  "$DATA/videos/lp_d3.mp4" "$OUT/photo.png"  # the photo to animate: a clip's first frame
deepjax animate --workdir="$MOTION_RUN" --source="$OUT/photo.png" \
  --driving="$DATA/videos/lp_d9.mp4" --max_frames=48 --output="$OUT/animate.mp4" \
  > "$OUT/animate.log" 2>&1
for name in swap animate; do
  python - "$OUT/$name.mp4" "$OUT/${name}_tampered.mp4" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
start = data.find(b"mdat")
data[start + (len(data) - start) // 2] ^= 0xFF
open(sys.argv[2], "wb").write(bytes(data))
PY
done
files=("$OUT/swap.mp4" "$OUT/animate.mp4" "$OUT/swap_tampered.mp4" "$OUT/animate_tampered.mp4")
echo "== c2pa (deepjax verify)"
deepjax verify "${files[@]}" || true
echo "== c2pa-ts $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" \
  "$TOOL/node_modules/@trustnxt/c2pa-ts/package.json")"
node "$TOOL/check.mjs" "${files[@]}" || true
