#!/usr/bin/env bash
# Distributed testing, as mmdet3d's tools/dist_test.sh:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py arguments]
# One process per GPU through torch.distributed.run, each running tools/test.py with
# --launcher pytorch; the metric gathers every rank's predictions. Environment as
# tools/dist_train.sh (NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON). See docs/distributed.md.
set -e
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py arguments]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
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
    "$TOOLS/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
