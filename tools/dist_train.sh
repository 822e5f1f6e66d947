#!/usr/bin/env bash
# Distributed training on one or several machines with PyTorch's launcher (torch.distributed.run).
#   tools/dist_train.sh CONFIG NUM_PROCS_PER_NODE [train.py arguments...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in mmpretrain. Uses nccl on GPUs and gloo
# when no GPU is present (tools/train.py decides; the config is not edited).
# PYTHON selects the interpreter (default: the repo's .venv if present, else python).
# A busy PORT is reported before launching (with a free one to use). The launcher replaces this
# shell (exec) and its workers die with it, whatever the signal (tools/dist_launch.sh).
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: tools/dist_train.sh CONFIG NUM_PROCS_PER_NODE [train.py arguments...] (2 arguments needed, $# given)" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" tools/dist_train.sh train.py "$2" \
    "$1" --launcher pytorch "${@:3}"
