#!/usr/bin/env bash
# Re-ID DDP training with torchrun: bash tools/reid_dist_train.sh CONFIG NPROC [reid_train.py options]
#   one process per GPU (nccl; use_gpu True in the config) or per CPU rank (gloo).
#   several machines: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 PORT=29500 on each machine.
#   train.batch_size is per process: the global batch is NNODES x NPROC x batch_size.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [reid_train.py options / KEY VALUE overrides]" >&2
  exit 2
fi
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
  "$here/tools/reid_train.py" --config-file "$CONFIG" "$@"
