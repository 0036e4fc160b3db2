#!/usr/bin/env bash
# Slurm launcher for both sides (OpenMMLab style): one task per GPU, srun starts every rank.
#   mm hosts:  [GPUS=16] bash tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR [train.py options]
#   re-ID:     [GPUS=16] bash tools/slurm_train.sh PARTITION JOB CONFIG.yaml WORK_DIR [reid_train.py options]
# A .yaml/.yml CONFIG runs tools/reid_train.py (--save-dir WORK_DIR), anything else tools/train.py
# (--work-dir WORK_DIR --launcher slurm). Environment: GPUS (total, default 8), GPUS_PER_NODE
# (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun options), PORT (default 29500).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [options]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
here="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$here/.venv/bin/python}"
[ -x "$PY" ] || PY=python
export MASTER_PORT=${PORT:-29500}
case "$CONFIG" in
  *.yaml|*.yml) CMD=("$here/tools/reid_train.py" --config-file "$CONFIG" --save-dir "$WORK_DIR" "$@") ;;
  *)            CMD=("$here/tools/train.py" "$CONFIG" --work-dir "$WORK_DIR" --launcher slurm "$@") ;;
esac
# shellcheck disable=SC2086
PYTHONPATH="$here:${PYTHONPATH:-}" srun -p "$PARTITION" \
  --job-name="$JOB_NAME" \
  --gres=gpu:"$GPUS_PER_NODE" \
  --ntasks="$GPUS" \
  --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" \
  --kill-on-bad-exit=1 \
  $SRUN_ARGS \
  "$PY" -u "${CMD[@]}"
