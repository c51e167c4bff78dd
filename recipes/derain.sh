#!/usr/bin/env bash
# Reproduces weights/derain.safetensors. Resumable: rerun it and it continues
# from the checkpoints in checkpoints/derain/ (committed to the repo).
# Needs ../shared/data/bsds500 (train/ for training, val/ for validation).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/bsds500}
RUN=${RUN:-checkpoints/derain}
NETR_STEPS=${NETR_STEPS:-}  # empty: the recipe's netr_steps
restore() { .venv/bin/python -m restore_cli "$@"; }
restore train netl --recipe recipes/derain.json --data "$DATA/train" --val "$DATA/val" --out "$RUN" --resume
restore train netr --recipe recipes/derain.json --data "$DATA/train" --val "$DATA/val" --out "$RUN" --resume ${NETR_STEPS:+--steps $NETR_STEPS}
restore train export "$RUN/netr.ckpt" --out weights/derain.safetensors
