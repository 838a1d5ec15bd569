#!/usr/bin/env bash
# Recipe v5 of lvt-unet = v3 plus the vesselness input channel in the fine stage
# (configs/lvt-unet-v5.json: "inputs": ["ct", "vesselness"], in_channels 2; the channel's one
# home is LiverLVTLib/segmentation/inputs.py). Fold A's v3 coarse stage is kept; its fine stage
# is widened onto the new channel at zero weight (it starts out as v3) and fine-tuned from the v3
# weights (3000 iterations planned, lr 3e-4, cosine over FINE_MIN minutes) on THREADS threads;
# a rerun resumes. The first run caches the channel (.traindata/fine/vesselness/).
# Ablation: liverlvt evaluate --manifest M --folds runs/v5-a --cases <fold A's held-out cases>
# against the same with the v3 folder (Resources/Models/lvt-unet).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MANIFEST:-../shared/data/manifest.json}
A_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"
V3=${V3:-Resources/Models/lvt-unet}
mkdir -p runs/v5-a
[ -f runs/v5-a/model.json ] || cp "$V3"/*.pt "$V3"/model.json runs/v5-a/
OMP_NUM_THREADS=${THREADS:-1} nice -n 10 .venv/bin/liverlvt train --manifest "$M" --config configs/lvt-unet-v5.json \
  --quiet --out runs/v5-a --exclude $A_OUT --stages fine --init-from "$V3" --max-minutes "${FINE_MIN:-55}"
