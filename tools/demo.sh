#!/usr/bin/env bash
# The README demo: embedded data, then a short honest run of each method through its host.
# Each step prints its own table; the whole demo stays under 15 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${MMEXT_DEMO_DIR:-work_dirs/demo}"
mkdir -p "$OUT"
t0=$(date +%s)
say() { printf '\n===== [demo %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

say "digits-cifar: ResNet-18 (width 16) through tools/train.py + tools/test.py"
"$PY" tools/make_data.py digits-cifar > "$OUT/make_data.log" 2>&1 || { tail -30 "$OUT/make_data.log"; exit 1; }
cfg=configs/mmpretrain/digits/resnet18-w16_1xb64-6e_digits-cifar.py
# host output goes to the log files; a progress line shows the run (mm_ext/engine/progress.py)
"$PY" -m mm_ext.engine.progress --label "train 6 epochs" --log "$OUT/digits.train.log" -- \
  "$PY" tools/train.py "$cfg" --work-dir "$OUT/digits"
ckpt=$(cat "$OUT/digits/last_checkpoint")
"$PY" -m mm_ext.engine.progress --label "test" --log "$OUT/digits.test.log" -- \
  "$PY" tools/test.py "$cfg" "$ckpt" --work-dir "$OUT/digits"
"$PY" - "$OUT/digits.test.log" <<'PYEOF'
import json, sys
m = json.loads(open(sys.argv[1]).read().rsplit('metrics: ', 1)[1].splitlines()[0])
print(f"digits-cifar test accuracy (297 held-out digits): {m['accuracy/top1']:.2f}%")
PYEOF

for demo in tools/demos/*.py; do
  [ -e "$demo" ] || continue
  name=$(basename "$demo" .py)
  say "$name"
  "$PY" "$demo" --work-dir "$OUT/$name"
done
say "done in $(( $(date +%s) - t0 ))s; pictures and logs under $OUT/"
