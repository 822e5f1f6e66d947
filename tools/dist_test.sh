#!/usr/bin/env bash
# Distributed testing on one or several machines with PyTorch's launcher (torch.distributed.run).
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS_PER_NODE [test.py arguments...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmpretrain. Uses nccl on GPUs and gloo
# when no GPU is present (tools/test.py decides; the config is not edited).
# PYTHON selects the interpreter (default: the repo's .venv if present, else python).
# A busy PORT is reported before launching (with a free one to use). The launcher replaces this
# shell (exec) and its workers die with it, whatever the signal (tools/dist_launch.sh).
set -euo pipefail
if [ "$#" -lt 3 ]; then
  echo "usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS_PER_NODE [test.py arguments...] (3 arguments needed, $# given)" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" tools/dist_test.sh test.py "$3" \
    "$1" "$2" --launcher pytorch "${@:4}"
