#!/usr/bin/env bash
# Recipe v4 of lvt-unet = v3 plus two fine-stage augmentations: the equilibrium-phase look
# (compress_enhancement_prob 0.3, as v3's coarse stage) and the thick-slice look (thick_slice_prob
# 0.3, 2.5-5 mm slabs: partial volume at the liver's tips and fissures, v3's commonest false
# tumors). Fold A's v3 coarse stage is kept, its fine stage fine-tuned from the v3 weights
# (configs/lvt-unet-v4.json: 2500 iterations, lr 3e-4, channels-last) for FINE_MIN minutes on THREADS
# threads (fp32 on a CPU without native bf16); a rerun resumes.
# Ablation: liverlvt evaluate --manifest M --folds runs/v4-a --cases <fold A's held-out cases>
# against the same with the v3 folder (Resources/Models/lvt-unet).
# Outcome (2026-12-02, FINE_MIN=55 THREADS=2: 1227 iterations): worse than v3 (tumor Dice on
# ircadb-1.1 0.625 -> 0.530, false lesions 16 -> 21); not shipped (configs/lvt-unet-v3-card-notes.md).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MANIFEST:-../shared/data/manifest.json}
A_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"
V3=${V3:-Resources/Models/lvt-unet}
mkdir -p runs/v4-a
[ -f runs/v4-a/model.json ] || cp "$V3"/*.pt "$V3"/model.json runs/v4-a/
OMP_NUM_THREADS=${THREADS:-1} nice -n 10 .venv/bin/liverlvt train --manifest "$M" --config configs/lvt-unet-v4.json \
  --quiet --out runs/v4-a --exclude $A_OUT --stages fine --init-from "$V3" --max-minutes "${FINE_MIN:-45}"
