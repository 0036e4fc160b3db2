#!/usr/bin/env bash
# DDP training with torchrun, for both sides (the one torchrun launcher of this project):
#   mm hosts: bash tools/dist_train.sh CONFIG.py NPROC [train.py options]
#   re-ID:    bash tools/dist_train.sh CONFIG.yaml NPROC [reid_train.py options / KEY VALUE overrides]
# A .yaml/.yml CONFIG runs tools/reid_train.py --config-file CONFIG, anything else tools/train.py --launcher pytorch.
# One process per GPU (nccl) or per CPU rank (gloo). Several machines: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0
# PORT=29500 on each. Batch sizes in the configs are per process.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [options]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
here="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$here/.venv/bin/python}"
[ -x "$PY" ] || PY=python
case "$CONFIG" in
  *.yaml|*.yml) CMD=("$here/tools/reid_train.py" --config-file "$CONFIG" "$@") ;;
  *)            CMD=("$here/tools/train.py" "$CONFIG" --launcher pytorch "$@") ;;
esac
PYTHONPATH="$here:${PYTHONPATH:-}" exec "$PY" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --nproc_per_node="$NPROC" --master_port="${PORT:-29500}" \
  "${CMD[@]}"
