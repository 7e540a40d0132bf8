#!/usr/bin/env bash
# N JAX processes x M CPU devices each on this machine, joined by jax.distributed
# (gloo CPU collectives): a small model of a multi-host run, for testing.
#
#   launch/local_multiprocess.sh N M [deepjax train flags...]
#   launch/local_multiprocess.sh 2 4 --config=configs/faceswap_ae.py:tiny --workdir=runs/mp
#
# Process 0 writes to the terminal; process i>0 to <workdir>/process_<i>.log
# ($LOG_DIR if set). Ctrl-C / SIGTERM is passed to every process: they finish
# the step, save a checkpoint together and exit; rerun the command to resume.
# The global batch (config.batch_size) must be a multiple of N*M.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,13p' "$0"; exit 2
fi
NPROC=$1; NDEV=$2; shift 2
PYTHON=${PYTHON:-python}
WORKDIR=""
for a in "$@"; do [[ $a == --workdir=* ]] && WORKDIR=${a#--workdir=}; done
LOG_DIR=${LOG_DIR:-${WORKDIR:-.}}
mkdir -p "$LOG_DIR"
PORT=${PORT:-$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("localhost",0)); print(s.getsockname()[1])')}

export JAX_PLATFORMS=cpu
export JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo
export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${NDEV}"

PIDS=()
stop() { kill -TERM "${PIDS[@]}" 2>/dev/null || true; }
trap stop TERM INT
for ((i = 0; i < NPROC; i++)); do
  ARGS=(-m deepjax train "$@" --coordinator="localhost:${PORT}" --num_processes="$NPROC"
        --process_id="$i")
  if [[ $i -eq 0 ]]; then
    "$PYTHON" "${ARGS[@]}" &
  else
    "$PYTHON" "${ARGS[@]}" > "${LOG_DIR}/process_${i}.log" 2>&1 &
  fi
  PIDS+=($!)
done
STATUS=0
for p in "${PIDS[@]}"; do
  while true; do
    set +e; wait "$p"; rc=$?; set -e
    # wait returns >128 when a trapped signal interrupts it; wait again for the child.
    if [[ $rc -gt 128 ]] && kill -0 "$p" 2>/dev/null; then continue; fi
    break
  done
  [[ $rc -ne 0 ]] && STATUS=$rc
done
exit $STATUS
