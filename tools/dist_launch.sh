#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh share: run a tool of this folder under PyTorch's
# launcher (torch.distributed.run) after checking the rendezvous port.
#   tools/dist_launch.sh CALLER TOOL NUM_PROCS_PER_NODE [tool arguments...]
# CALLER names the script the user ran (for the busy-port message). Multi-node: NNODES, NODE_RANK,
# MASTER_ADDR and PORT as in mmpretrain. PYTHON selects the interpreter (default: the repo's .venv
# if present, else python). The launcher replaces this shell (exec) and its workers die with it,
# whatever the signal (tools/train.py, test.py).
set -euo pipefail
CALLER=$1
TOOL=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

if [ "$NODE_RANK" = "0" ]; then
  "$PYTHON" "$ROOT/tools/free_port.py" "$PORT" "$CALLER" || exit 1
fi

PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$ROOT/tools/$TOOL" \
    "${@:4}"
