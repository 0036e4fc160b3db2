#!/usr/bin/env bash
# DDP training with torchrun: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# Works on GPUs (nccl) and on CPU-only machines (gloo, one process per rank).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
here="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$here/.venv/bin/python}"
[ -x "$PY" ] || PY=python
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHONPATH="$here:${PYTHONPATH:-}" exec "$PY" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
  --nproc_per_node="$NPROC" --master_port="$PORT" \
  "$here/tools/train.py" "$CONFIG" --launcher pytorch "$@"
