#!/usr/bin/env bash
# The shipped lvt-unet and its 2-fold cross-validation, in one run on the 2-core CPU machine.
# (The shipped run itself was made in several time-budgeted, resumed pieces over two sessions;
# its exact iterations and times are in the card's training.stages.)
# Fold A (shipped) holds out one case per phase; fold B trains on exactly those and holds out the
# other five labelled cases. Budgets are wall-clock minutes (--max-minutes); both folds can run at
# once on one thread each. Then: tools/finalize_model.py --run runs/lvt-unet --eval runs/cv/metrics.json
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MANIFEST:-../shared/data/manifest.json}
PY=.venv/bin/python
A_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"
B_OUT="crlm-1100 ircadb-1.7 lits-0 radcttaceomics-0697-eqp radcttaceomics-1211-ap"
train() { OMP_NUM_THREADS=1 $PY -m LiverLVTLib train --manifest "$M" --config configs/lvt-unet-cpu.json --quiet "$@"; }
( train --out runs/lvt-unet --exclude $A_OUT --stages coarse --max-minutes 60
  train --out runs/lvt-unet --exclude $A_OUT --stages fine --max-minutes 170 ) & fold_a=$!
( train --out runs/fold-b --exclude $B_OUT --stages coarse --max-minutes 35
  train --out runs/fold-b --exclude $B_OUT --stages fine --max-minutes 84 ) & fold_b=$!
wait "$fold_a"; wait "$fold_b"  # a failed fold stops the script (set -e) before evaluation
$PY -m LiverLVTLib evaluate --manifest "$M" --folds runs/lvt-unet runs/fold-b --no-tta --out runs/cv
