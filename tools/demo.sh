#!/usr/bin/env bash
# The README's main job: pre-train the tiny LocalMIM ViT on the sample images shipped in
# data/sample_cifar (CPU, about 1-2 minutes), then show what it produced.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CONFIG=configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py
WORK_DIR="${WORK_DIR:-work_dirs/demo_localmim_vit-tiny}"
EPOCHS="${EPOCHS:-20}"

mkdir -p "$(dirname "$WORK_DIR")"
echo "[demo] pre-training LocalMIM (ViT-tiny, 64 px, HOG targets at 4 scales) for $EPOCHS epochs"
echo "[demo] on the 300 sample images in data/sample_cifar/train; log: $WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
    --cfg-options train_cfg.max_epochs="$EPOCHS" default_hooks.logger.interval=10 \
    > "$WORK_DIR.log" 2>&1 || { tail -40 "$WORK_DIR.log"; echo "[demo] training failed"; exit 1; }
"$PYTHON" tools/demo_summary.py "$WORK_DIR" --config "$CONFIG"

LAST_CKPT=$(cat "$WORK_DIR/last_checkpoint")
echo "[demo] drawing what each supervised layer reconstructs on 2 validation images"
"$PYTHON" tools/analysis_tools/visualize_reconstruction.py "$CONFIG" "$LAST_CKPT" \
    --images data/sample_cifar/val/airplane/0000.jpg data/sample_cifar/val/cat/0000.jpg \
    --out-dir "$WORK_DIR/reconstructions" > "$WORK_DIR/reconstructions.log" 2>&1 \
    || { tail -20 "$WORK_DIR/reconstructions.log"; echo "[demo] drawing failed"; exit 1; }
echo "[demo] reconstruction grids (input, masked input, target and predicted HOG per layer):"
find "$WORK_DIR/reconstructions" -name '*.png' | sort | sed 's/^/    /'
