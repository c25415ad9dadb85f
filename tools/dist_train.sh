#!/usr/bin/env bash
# Distributed training on one or more machines, as mmdet3d's tools/dist_train.sh:
#   tools/dist_train.sh CONFIG GPUS [tools/train.py arguments, e.g. --sync_bn torch]
# One process per GPU through torch.distributed.run (torchrun), each running tools/train.py
# with --launcher pytorch. Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (the master port),
# PYTHON (the interpreter, default `python`). See docs/distributed.md.
set -e
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py arguments]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
TOOLS=$(dirname "$0")

PYTHONPATH="$TOOLS/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
