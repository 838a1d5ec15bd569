#!/usr/bin/env bash
# Recipe v2 of the shipped lvt-unet and its 2-fold cross-validation, on the 2-core CPU machine,
# one thread per fold, both folds at once (as the shipped run was made; minutes are wall-clock
# budgets, the cosine learning rate follows them; an interrupted run resumes from its checkpoint).
# Fold A (shipped) holds out one case per phase; its coarse stage is v1's and its fine stage is
# warm-started from v1's fine weights (v1 trained on the same cases). Fold B trains from scratch on
# exactly fold A's held-out cases. Then: tools/finalize_model.py --run runs/v2-a --eval runs/cv/metrics.json
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MANIFEST:-../shared/data/manifest.json}
PY=.venv/bin/python
A_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"
B_OUT="crlm-1100 ircadb-1.7 lits-0 radcttaceomics-0697-eqp radcttaceomics-1211-ap"
V1=${V1:-Resources/Models/lvt-unet}  # the v1 model folder (git show 420d4b5:Resources/Models/lvt-unet/...)
train() { OMP_NUM_THREADS=1 nice -n 10 $PY -m LiverLVTLib train --manifest "$M" --config configs/lvt-unet-v2.json --quiet "$@"; }
mkdir -p runs/v2-a
cp "$V1/coarse.pt" runs/v2-a/coarse.pt
$PY -c "import json,sys; c=json.load(open('$V1/model.json')); json.dump(c['training']['stages']['coarse'], open('runs/v2-a/training-coarse.json','w'))"
( train --out runs/v2-a --exclude $A_OUT --stages fine --init-from "$V1" --max-minutes 118 ) & fold_a=$!
( train --out runs/v2-b --exclude $B_OUT --stages coarse --max-minutes 30
  train --out runs/v2-b --exclude $B_OUT --stages fine --max-minutes 85 ) & fold_b=$!
wait "$fold_a"; wait "$fold_b"  # a failed fold stops the script (set -e) before evaluation
for fold in runs/v2-a runs/v2-b; do  # the vessel prior is a post-processing setting of the card
  $PY -c "import json; p='$fold/model.json'; c=json.load(open(p)); c['postprocess']['vessel_prior']=True; json.dump(c, open(p,'w'), indent=1)"
done
$PY -m LiverLVTLib evaluate --manifest "$M" --folds runs/v2-a runs/v2-b --no-tta --out runs/cv
