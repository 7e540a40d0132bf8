#!/usr/bin/env bash
# Warm start of `deepjax train` (seconds to the first finished step, XLA cache and data
# ready) of an older revision against the working tree, alternating runs on the same machine
# so that its drift falls on both.
# Usage (repository root, venv active):
#   bash scripts/ab_warm_start.sh REF [CONFIG] [RUNS]
#   bash scripts/ab_warm_start.sh c253e34 tpsmm_vox256.py:tiny 3
# CONFIG is a file of configs/ with its argument (default faceswap_ae.py:tiny); motion configs
# train on synthetic talking heads here.
set -euo pipefail
REF=${1:?usage: ab_warm_start.sh REF [CONFIG] [RUNS]}
CONFIG=${2:-faceswap_ae.py:tiny}
RUNS=${3:-3}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/ref" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q "$tmp/ref" "$REF"
export JAX_COMPILATION_CACHE_DIR=$tmp/xla
extra=()
case $CONFIG in fomm*|tpsmm*) extra=(--config.data.source=synthetic) ;; esac
first_step() {  # $1: source tree, $2: run folder
  (cd "$1" && PYTHONPATH="$1" python -m deepjax train --config="$1/configs/$CONFIG" \
    --workdir="$2" --config.num_steps=1 --config.data.data_dir="$tmp/data" "${extra[@]}" 2>&1 |
    sed -n 's/^first step done \([0-9.]*\) s.*/\1/p')
}
root=$(pwd)
first_step "$tmp/ref" "$tmp/fill_ref" > /dev/null   # fills the caches of both revisions
first_step "$root" "$tmp/fill_new" > /dev/null
for i in $(seq "$RUNS"); do
  echo "ref $REF: $(first_step "$tmp/ref" "$tmp/ref_$i") s   tree: $(first_step "$root" "$tmp/new_$i") s"
done
