#!/usr/bin/env bash
# Reproduces weights/<name>.safetensors from recipes/<name>.json:
#   recipes/train.sh NAME   (NAME: any recipes/NAME.json; the shipped ones are in README.md)
# Resumable: rerun it and it continues from the checkpoints in checkpoints/<name>/
# (committed to the repo). Needs ../shared/data/bsds500 (train/ and val/).
# Staged runs: NETL_STEPS / NETR_STEPS stop each stage early; a later run with
# more NetL steps trains NetL further, and NetR then continues with that NetL.
# A recipe with netr_init (or netl_init) starts from the checkpoint or export that path names:
# train that one first.
set -euo pipefail
cd "$(dirname "$0")/.."
TASK=${1:?usage: recipes/train.sh NAME, one of: $(cd recipes && ls *.json | sed "s/\.json$//" | tr "\n" " ")}
DATA=${DATA:-../shared/data/bsds500}
RUN=${RUN:-checkpoints/$TASK}
NETL_STEPS=${NETL_STEPS:-}  # empty: the recipe's netl_steps
NETR_STEPS=${NETR_STEPS:-}  # empty: the recipe's netr_steps
THREADS=${THREADS:-2}       # torch threads; use 1 while other jobs share the CPU
DEVICE=${DEVICE:-cpu}       # cuda: the steps on a GPU (then WORKERS=12 or so, to keep it fed)
WORKERS=${WORKERS:-0}       # processes making the coming batches ahead
OUT=${OUT:-weights/$TASK.safetensors}  # where the weights go; point experiments elsewhere
PYTHON=${PYTHON:-.venv/bin/python}  # another interpreter, e.g. python3 on a machine that has torch
restore() { "$PYTHON" -m restore_cli "$@"; }
common=(--recipe "recipes/$TASK.json" --data "$DATA/train" --val "$DATA/val" --out "$RUN" --resume --threads "$THREADS" --device "$DEVICE" --workers "$WORKERS")
restore train netl "${common[@]}" ${NETL_STEPS:+--steps $NETL_STEPS}
restore train netr "${common[@]}" ${NETR_STEPS:+--steps $NETR_STEPS}
restore train export "$RUN/netr.ckpt" --out "$OUT"
