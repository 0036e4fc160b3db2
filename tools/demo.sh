#!/usr/bin/env bash
# The README demo: embedded data, then a short honest run of each method through its host.
# Each step prints its own table; the whole demo is meant to stay under 15 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${MMEXT_DEMO_DIR:-work_dirs/demo}"
mkdir -p "$OUT"
t0=$(date +%s)
say() { printf '\n===== [demo %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
# Every step runs single-threaded (torch's 2 threads on a busy 2-core machine are much slower), so the
# demo uses the machine's two cores as two lanes: the mm hosts here in the foreground, the torchreid
# demos beside them on the other core (their output is shown when that lane ends, and live in
# $OUT/reid-lane.log).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
REID_DEMOS="act cace_net pisnet reid"   # tools/demos/<name>.py that use torchreid (their own datasets)
run_demo() { local name=$1; say "$name"; "$PY" "tools/demos/$name.py" --work-dir "$OUT/$name"; }
reid_lane() {
  local rc=0 name
  for name in $REID_DEMOS; do
    [ -e "tools/demos/$name.py" ] || continue
    run_demo "$name" || { rc=$?; echo "demo $name failed (exit $rc)"; }
  done
  return $rc
}
reid_lane > "$OUT/reid-lane.log" 2>&1 &
reid_pid=$!
trap 'kill $reid_pid 2>/dev/null || true' EXIT

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
  case " $REID_DEMOS " in *" $name "*) continue ;; esac
  run_demo "$name"
done
say "mm-host demos done; waiting for the torchreid lane ($REID_DEMOS)"
reid_rc=0
wait "$reid_pid" || reid_rc=$?
trap - EXIT
printf '\n===== torchreid lane (ran beside the mm demos; log %s)' "$OUT/reid-lane.log"
cat "$OUT/reid-lane.log"
[ "$reid_rc" -eq 0 ] || { echo "torchreid lane failed (exit $reid_rc)"; exit "$reid_rc"; }
say "done in $(( $(date +%s) - t0 ))s; pictures and logs under $OUT/"
