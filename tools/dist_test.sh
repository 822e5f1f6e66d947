#!/usr/bin/env bash
# Distributed testing on one or several machines with PyTorch's launcher (torch.distributed.run).
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS_PER_NODE [test.py arguments...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmpretrain. Uses nccl on GPUs and gloo
# when no GPU is present (tools/test.py decides; the config is not edited).
# PYTHON selects the interpreter (default: the repo's .venv if present, else python).
# A busy PORT is reported before launching (with a free one to use). The launcher replaces this
# shell (exec) and its workers die with it, whatever the signal (tools/train.py, test.py).
set -euo pipefail
if [ "$#" -lt 3 ]; then
  echo "usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS_PER_NODE [test.py arguments...] (3 arguments needed, $# given)" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
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
  "$PYTHON" "$ROOT/tools/free_port.py" "$PORT" tools/dist_test.sh || exit 1
fi

PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$ROOT/tools/test.py" \
    "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
