#!/usr/bin/env bash
# Re-ID DDP training with torchrun: bash tools/reid_dist_train.sh CONFIG.yaml NPROC [reid_train.py options]
# Kept for torchreid users' habits; the launcher itself is tools/dist_train.sh (it dispatches on .yaml).
#   train.batch_size is per process: the global batch is NNODES x NPROC x batch_size.
set -euo pipefail
case "${1:-}" in
  *.yaml|*.yml) ;;
  *) echo "usage: $0 CONFIG.yaml NPROC [reid_train.py options / KEY VALUE overrides]" >&2; exit 2 ;;
esac
exec bash "$(dirname "$0")/dist_train.sh" "$@"
