#!/usr/bin/env bash
# The README's main job: pre-train a tiny LocalMIM ViT on the 300 sample images shipped in
# data/sample_cifar (CPU, about 5 minutes on an idle 2-core machine), showing progress, the k-NN
# accuracy of the encoder and its reconstructions while it trains, then what it learned.
#   EPOCHS=N   train N epochs instead of 150 (the lr schedule is rescaled: tools/train.py --epochs)
#   WORK_DIR   where the run goes (default work_dirs/demo_localmim_vit-tiny)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CONFIG=configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-150e_demo.py
WORK_DIR="${WORK_DIR:-work_dirs/demo_localmim_vit-tiny}"
EPOCHS="${EPOCHS:-150}"
LOG="$WORK_DIR.log"
STARTED=$(date +%s)
LOAD_BEFORE=$("$PYTHON" -c 'import os; print(*(round(x, 2) for x in os.getloadavg()))')

mkdir -p "$(dirname "$WORK_DIR")"
echo "[demo] pre-training LocalMIM (ViT 8 blocks x 128, 64 px, HOG targets at 4 scales) for"
echo "[demo] $EPOCHS epochs of 10 iterations on the 300 images of data/sample_cifar/train."
echo "[demo] Every 10 epochs: k-NN top-1 of the encoder on the 100 validation images; every 50:"
echo "[demo] reconstructions of 2 of them. Full log: $LOG"
# Progress: one line every 10 epochs (loss, ETA), the monitor's k-NN, the drawings.
show_progress() {
    sed -u -n -E \
        -e 's/.*Epoch\(train\) *\[(1|[0-9]*0|'"$EPOCHS"')\]\[ *[0-9]+\/[0-9]+\].*eta: ([0-9:]+).* loss: ([0-9.]+) .*/[demo] epoch \1 of '"$EPOCHS"'   loss \3   eta \2/p' \
        -e 's/.*Monitor\((initial|epoch [0-9]+)\) \[[0-9]+\]  knn_top1: ([0-9.]+).*\((.*)\)$/[demo]     k-NN top-1 \2 % (\1; monitor took \3)/p' \
        -e 's/.*LiveReconstructionHook: drew ([0-9]+) reconstruction figure\(s\) for (epoch [0-9]+).*/[demo]     reconstructions drawn (\2)/p'
}
set +e
PYTHONUNBUFFERED=1 "$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --epochs "$EPOCHS" \
    2>&1 | tee "$LOG" | show_progress
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    tail -40 "$LOG"
    echo "[demo] training failed (exit $status); full log: $LOG"
    exit 1
fi
"$PYTHON" tools/demo_summary.py "$WORK_DIR" --config "$CONFIG" --started "$STARTED" \
    --load-before $LOAD_BEFORE
