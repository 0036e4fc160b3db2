#!/usr/bin/env bash
# One-command set-up of mm-ext: .venv/ with torch, mmcv 2.1.0 (ops, built once and cached),
# the four hosts and this package in editable mode.  Idempotent; re-running reuses everything.
#
# Environment knobs:
#   PYTHON=python3.11        interpreter used to create .venv
#   MMEXT_VENV=.venv         where the virtual environment lives
#   MMEXT_TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"   (set to "" to keep a torch you installed)
#   MMEXT_WHEEL_CACHE=${XDG_CACHE_HOME:-~/.cache}/mm-ext/wheels   cache of the built mmcv wheel
#   MMEXT_MMCV_CUDA=auto|0|1  build mmcv's CUDA ops (auto: when nvcc and a GPU are present)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
PYTHON="${PYTHON:-python3.11}"
VENV="${MMEXT_VENV:-$here/.venv}"
TORCH_SPEC="${MMEXT_TORCH_SPEC-torch==2.14.1 torchvision==0.29.1}"
CACHE="${MMEXT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mm-ext/wheels}"
LOGDIR="$here/.setup-logs"
mkdir -p "$LOGDIR" "$CACHE"
t0=$(date +%s)

step() { printf '\n[setup %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
fail() {
  echo "[setup] FAILED: $1" >&2
  echo "[setup] log: $2" >&2
  echo "[setup] fix: $3" >&2
  exit 1
}
run_logged() {  # run_logged LOGNAME HINT CMD...
  local log="$LOGDIR/$1.log" hint="$2"; shift 2
  if ! "$@" >"$log" 2>&1; then tail -n 25 "$log" >&2; fail "$*" "$log" "$hint"; fi
}

step "virtual environment at $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || fail "no $PYTHON on PATH" "-" "install Python 3.11 or set PYTHON=/path/to/python3.11"
  run_logged venv "check that the venv module is installed (apt-get install python3-venv)" "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
run_logged pip-tools "check network access to PyPI" "${PIP[@]}" install -q "pip>=24" "setuptools<81" wheel ninja

if [ -n "$TORCH_SPEC" ]; then
  step "torch ($TORCH_SPEC)"
  # shellcheck disable=SC2086
  # torch asks for setuptools>=77.0.3 and would pull the newest, which lacks pkg_resources (needed by
  # mmcv's setup.py and at run time by mmengine): keep it below 81.
  run_logged torch "install a torch/torchvision pair yourself and rerun with MMEXT_TORCH_SPEC=''" "${PIP[@]}" install $TORCH_SPEC "setuptools<81"
fi
"$PY" -c 'import pkg_resources' 2>/dev/null || run_logged setuptools "pip install 'setuptools<81' into $VENV" "${PIP[@]}" install "setuptools<81"
torch_ver=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
pytag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

want_cuda="${MMEXT_MMCV_CUDA:-auto}"
if [ "$want_cuda" = auto ]; then
  want_cuda=0
  if command -v nvcc >/dev/null && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then want_cuda=1; fi
fi
if [ "$want_cuda" = 1 ]; then flavour="cu$("$PY" -c 'import torch; print((torch.version.cuda or "").replace(".",""))')"; else flavour=cpu; fi
key="mmcv-2.1.0-$pytag-torch$torch_ver-$flavour"
wheel_dir="$CACHE/$key"

step "mmcv 2.1.0 with ops ($key)"
if "$PY" -c 'import mmcv, mmcv.ops, sys; sys.exit(0 if mmcv.__version__ == "2.1.0" else 1)' 2>/dev/null; then
  echo "  already installed"
else
  if ! ls "$wheel_dir"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "  no cached wheel in $wheel_dir: building from the PyPI sdist (about 30 min on 2 cores; log: $LOGDIR/mmcv-build.log)"
    src="$(mktemp -d)"
    run_logged mmcv-download "check access to PyPI" "${PIP[@]}" download --no-deps --no-build-isolation --no-binary :all: "mmcv==2.1.0" -d "$src"
    tar -xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$src/mmcv-2.1.0/setup.py"
    tmp_wheels="$src/wheels"
    ( cd "$src/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA="$want_cuda" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$tmp_wheels" . ) >"$LOGDIR/mmcv-build.log" 2>&1 \
      || { tail -n 30 "$LOGDIR/mmcv-build.log" >&2; fail "building mmcv 2.1.0" "$LOGDIR/mmcv-build.log" \
           "look for the first 'error:' in the log; a compiler (g++ >= 10) and the Python headers are needed"; }
    mkdir -p "$wheel_dir"
    for w in "$tmp_wheels"/mmcv-*.whl; do cp "$w" "$wheel_dir/.$(basename "$w").part" && mv "$wheel_dir/.$(basename "$w").part" "$wheel_dir/$(basename "$w")"; done
    rm -rf "$src"
  else
    echo "  reusing cached wheel $(ls "$wheel_dir"/mmcv-2.1.0-*.whl)"
  fi
  run_logged mmcv-install "delete $wheel_dir and rerun to rebuild" "${PIP[@]}" install --no-deps "$wheel_dir"/mmcv-2.1.0-*.whl
fi

step "hosts and mm-ext (pip install -e .)"
if [ -n "$TORCH_SPEC" ]; then
  run_logged install "read the log; a pinned version may be unavailable from your index" \
    "${PIP[@]}" install -e ".[dev]"
else
  # Your own torch: install every dependency except torch/torchvision, then the package without deps.
  mapfile -t reqs < <("$PY" - <<'PYEOF'
import re, tomllib
p = tomllib.load(open('pyproject.toml', 'rb'))['project']
deps = p['dependencies'] + p['optional-dependencies']['dev']
print('\n'.join(d for d in deps if re.split(r'[<>=!~ \[]', d)[0] not in ('torch', 'torchvision')))
PYEOF
)
  run_logged install "read the log" "${PIP[@]}" install "${reqs[@]}"
  run_logged install-self "read the log" "${PIP[@]}" install --no-deps -e .
fi
# mmengine pulls opencv-python and mmaction2 opencv-contrib-python: both write cv2/. Keep one (contrib,
# a superset) so cv2 is not a mix of two wheels.
if "$PY" -m pip show -q opencv-python >/dev/null 2>&1 && "$PY" -m pip show -q opencv-contrib-python >/dev/null 2>&1; then
  cv=$("$PY" -m pip show opencv-contrib-python | awk '/^Version:/{print $2}')
  run_logged opencv "reinstall by hand: pip uninstall -y opencv-python opencv-contrib-python && pip install --no-deps opencv-contrib-python" \
    bash -c "'$PY' -m pip uninstall -q -y opencv-python opencv-contrib-python && '$PY' -m pip install -q --no-deps opencv-contrib-python==$cv"
fi
run_logged check "run: $PY -c 'import mm_ext, reid_ext' to see the error" \
  "$PY" -c 'import mm_ext, reid_ext, mmcv.ops, mmdet, mmaction, mmpretrain, torchreid; print("ok")'
step "done in $(( $(date +%s) - t0 ))s; activate with: source $VENV/bin/activate"
