#!/usr/bin/env bash
# Reproduces weights/derain.safetensors. Resumable: rerun it and it continues
# from the checkpoints in checkpoints/derain/ (committed to the repo).
# Needs ../shared/data/bsds500 (train/ for training, val/ for validation).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/bsds500}
RUN=${RUN:-checkpoints/derain}
NETR_STEPS=${NETR_STEPS:-}  # empty: the recipe's netr_steps
THREADS=${THREADS:-2}     # torch threads; use 1 while other jobs share the CPU
restore() { .venv/bin/python -m restore_cli "$@"; }
restore train netl --recipe recipes/derain.json --data "$DATA/train" --val "$DATA/val" --out "$RUN" --resume --threads "$THREADS"
restore train netr --recipe recipes/derain.json --data "$DATA/train" --val "$DATA/val" --out "$RUN" --resume --threads "$THREADS" ${NETR_STEPS:+--steps $NETR_STEPS}
restore train export "$RUN/netr.ckpt" --out weights/derain.safetensors
