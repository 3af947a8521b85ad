#!/usr/bin/env bash
# `pip install` of a built wheel, not the editable clone: build the wheel, check that it holds
# the presets, install it into a fresh virtual environment and run rlnas from outside the source
# tree (presets, config, cost, a tiny run). The fresh environment reuses the test environment's
# dependencies (the pinned CPU torch, numpy, ..., scikit-learn for the digits) through a .pth
# line, so nothing is downloaded; rlnas itself must come from the wheel (checked).
# Usage: .ci/wheel_check.sh [PYTHON]   (default .venv/bin/python, made by `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(realpath -s "${1:-.venv/bin/python}")  # -s: a venv's python is a symlink
SRC=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$SRC/build"' EXIT
start=$(date +%s)

# the environment's setuptools builds it offline; without one (Python >= 3.12 venvs), pip's
# isolated build fetches the build requirements
ISOLATION=$("$PY" -c 'import setuptools' 2>/dev/null && echo --no-build-isolation || true)
"$PY" -m pip wheel -q --no-deps $ISOLATION -w "$WORK/dist" .
WHEEL=$(ls "$WORK"/dist/rlnas-*.whl)
"$PY" - "$WHEEL" src/rlnas/configs <<'EOF'
import sys, zipfile
from pathlib import Path
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
presets = sorted(p.name for p in Path(sys.argv[2]).glob("*.yaml"))
missing = [p for p in presets if f"rlnas/configs/{p}" not in names]
assert presets and not missing, f"the wheel lacks the presets {missing}"
assert "rlnas/archplot.py" in names and "rlnas/pipeline/search.py" in names, "modules missing"
print(f"wheel {Path(sys.argv[1]).name}: {len(names)} files, {len(presets)} presets")
EOF

"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    > "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_deps.pth"
"$VPY" -m pip install -q --no-deps --no-index "$WHEEL"

cd "$WORK"  # outside the source tree: nothing there can be imported by accident
"$VPY" - "$WORK/venv" <<'EOF'
import sys
import rlnas
assert rlnas.__file__.startswith(sys.argv[1]), f"rlnas imported from {rlnas.__file__}"
EOF
RLNAS="$WORK/venv/bin/rlnas"
"$RLNAS" presets | tee presets.txt
grep -q "nb201-cifar10-fast .*$WORK/venv/.*/rlnas/configs/nb201-cifar10-fast.yaml" presets.txt
"$RLNAS" config --show nb201-cifar10-fast > /dev/null
cost=$("$RLNAS" cost '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|')
echo "$cost"
[[ "$cost" == *'"params_m": 1.531546'* ]]
"$RLNAS" run demo-digits epochs=1 channels=4 cells=1 subset=128 --out runs/d -q
test -s runs/d/result.json && test -s runs/d/arch.png && test -s runs/d/ranking.csv
echo "wheel check passed in $(( $(date +%s) - start )) s"
