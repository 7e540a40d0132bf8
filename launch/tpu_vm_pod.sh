#!/usr/bin/env bash
# Training on a Cloud TPU VM pod slice (e.g. v5e-32, v4-64): one process per TPU host.
#
#   launch/tpu_vm_pod.sh TPU_NAME ZONE [deepjax train flags...]
#   launch/tpu_vm_pod.sh my-v4-32 us-central2-b --config=configs/faceswap_ae.py --workdir=/mnt/shared/runs/ae
#
# Runs the same command on every worker (gcloud ... ssh --worker=all) in a clone of
# deepjax at ~/deepjax on each host (install once: REPO_URL=... launch/tpu_vm_pod.sh
# TPU_NAME ZONE --setup). DEEPJAX_DISTRIBUTED=auto: JAX reads the pod's hosts from
# the TPU metadata. The workdir must be one folder all hosts see (a Filestore/NFS
# mount, or a bucket mounted with gcsfuse at the same path on every host);
# config.batch_size is the global batch over all TPU chips.
# A maintenance event / preemption sends SIGTERM: all hosts save the same step and
# exit 0; run the same line again to resume.
set -euo pipefail
if [[ $# -lt 2 ]]; then sed -n '2,14p' "$0"; exit 2; fi
TPU=$1; ZONE=$2; shift 2
if [[ "${1:-}" == "--setup" ]]; then
  : "${REPO_URL:?set REPO_URL to the deepjax git URL}"
  CMD="set -e; [ -d ~/deepjax ] || git clone ${REPO_URL} ~/deepjax; cd ~/deepjax && \
pip install -U 'jax[tpu]' && pip install -e ."
else
  ARGS=$(printf '%q ' "$@")
  CMD="cd ~/deepjax && DEEPJAX_DISTRIBUTED=auto deepjax train ${ARGS}"
fi
exec gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="$CMD"
