#!/usr/bin/env bash
# One-command, idempotent environment setup for localmim_mm.
#
#   bash tools/setup_env.sh          # creates ./.venv and installs everything
#
# Environment variables:
#   VENV            where to create the virtual environment (default: <repo>/.venv)
#   PYTHON          interpreter used to create it (default: python3)
#   TORCH_SPEC      torch/torchvision requirement (default: the standard 2.13.0 / 0.28.0 builds;
#                   set e.g. "torch===2.13.0+cu126 torchvision===0.28.0+cu126 --index-url ..."
#                   for another CUDA)
#   MMCV_WHEEL_DIR  a folder holding a prebuilt mmcv 2.1.0 wheel (default: ../shared/wheels if it
#                   exists); without one mmcv is compiled from source (~12 min on 2 cores, cached
#                   by pip afterwards).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch===2.13.0 torchvision===0.28.0}"
STAMP="$VENV/.localmim_mm_setup"
say() { printf '[setup] %s\n' "$*"; }

# A stamp keyed on the requirement files makes the second run a no-op (seconds).
fingerprint() { cat "$REPO/requirements.txt" "$REPO/tools/setup_env.sh" "$REPO/setup.py" | sha256sum | cut -d' ' -f1; }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && "$VENV/bin/python" -c 'import localmim_mm' 2>/dev/null; then
  say "environment at $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
# pip, minus one harmless warning that some pip configurations print once per package
# (an extra index path that does not exist on this machine).
pip_install() {
  "$VENV/bin/python" -m pip install "$@" 2> >(grep -v 'is neither a file nor a directory' >&2)
}
pip_install -q --upgrade pip

have() { "$VENV/bin/python" -c "import importlib.metadata as m,sys; sys.exit(0 if m.version('$1')=='$2' else 1)" 2>/dev/null; }

say "step 1/5: torch and torchvision ($TORCH_SPEC)"
# shellcheck disable=SC2086
pip_install -q $TORCH_SPEC

say "step 2/5: build prerequisites (setuptools<81, wheel, numpy, ninja)"
pip_install -q "setuptools<81" wheel numpy ninja

if have mmcv 2.1.0 && "$VENV/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  say "step 3/5: mmcv 2.1.0 with ops already installed"
else
  WHEEL_DIR="${MMCV_WHEEL_DIR:-$REPO/../shared/wheels}"
  FIND_LINKS=()
  if ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    say "step 3/5: mmcv 2.1.0 from the prebuilt wheel in $WHEEL_DIR"
    FIND_LINKS=(--find-links "$WHEEL_DIR")
  else
    say "step 3/5: compiling mmcv 2.1.0 with ops from source: this takes about 12 minutes on 2 cores"
    say "         (pip caches the built wheel, so later runs on this machine take seconds)"
  fi
  MMCV_WITH_OPS=1 pip_install --no-build-isolation "${FIND_LINKS[@]}" mmcv==2.1.0
fi

say "step 4/5: OpenMMLab packages and test tools (requirements.txt)"
pip_install -q -r "$REPO/requirements.txt"

say "step 5/5: localmim_mm in editable mode"
pip_install -q --no-build-isolation --no-deps -e "$REPO"

"$VENV/bin/python" -c 'import torch, mmcv.ops, mmengine, mmpretrain, localmim_mm; print("[setup] torch", torch.__version__, "| mmcv", mmcv.__version__, "| mmpretrain", mmpretrain.__version__)'
fingerprint > "$STAMP"
say "done: activate with 'source $VENV/bin/activate'"
