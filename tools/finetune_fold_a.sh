#!/usr/bin/env bash
# A fine-stage recipe tried on top of v3 (fold A): v3's coarse stage is kept, its fine stage is
# fine-tuned from the v3 weights with CONFIG for FINE_MIN minutes (the cosine schedule follows
# them) on THREADS threads; a rerun resumes from OUT/checkpoints.
#   tools/finetune_fold_a.sh configs/lvt-unet-v4.json runs/v4-a   # recipe v4
#   tools/finetune_fold_a.sh configs/lvt-unet-v5.json runs/v5-a   # recipe v5
# Ablation: liverlvt evaluate --manifest M --folds OUT --cases <fold A's held-out cases> --no-tta,
# against the same with the v3 folder (Resources/Models/lvt-unet).
# Recipe v4 (the equilibrium-phase look, compress_enhancement_prob 0.3, and the thick-slice look,
# thick_slice_prob 0.3, 2.5-5 mm slabs; 2500 iterations planned, lr 3e-4, channels-last), run
# 2026-12-02 with FINE_MIN=55 THREADS=2 (1227 fp32 iterations): worse than v3 (tumor Dice on
# ircadb-1.1 0.625 -> 0.530, false lesions 16 -> 21); not shipped (configs/lvt-unet-v3-card-notes.md).
# Recipe v5 (the vesselness input channel, "inputs": ["ct", "vesselness"], widened onto v3's
# weights at zero weight; 3000 iterations planned, lr 3e-4): the first run caches the channel in
# .traindata/fine/vesselness/. Run 2026-12-06 with FINE_MIN=54 THREADS=1 (2605 iterations): vessel
# Dice 0.569 -> 0.589, tumor Dice on ircadb-1.1 0.625 -> 0.536; not shipped (card notes).
# Its control (configs/lvt-unet-v5-control.json: the same fine-tune, 2605 iterations, no channel):
#   FINE_MIN=600 THREADS=2 tools/finetune_fold_a.sh configs/lvt-unet-v5-control.json runs/v5c-a
# Recipe v6 (the control plus "phase_partner_labels": the CT-only phases 1211-eqp and 0697-ap
# borrow their labelled partner's labels; 2022-eqp leaves the fold with 2022-ap):
#   FINE_MIN=600 THREADS=2 tools/finetune_fold_a.sh configs/lvt-unet-v6.json runs/v6-a
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: $0 CONFIG OUT}
OUT=${2:?usage: $0 CONFIG OUT}
M=${MANIFEST:-../shared/data/manifest.json}
A_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"
V3=${V3:-Resources/Models/lvt-unet}
mkdir -p "$OUT"
[ -f "$OUT/model.json" ] || cp "$V3"/*.pt "$V3"/model.json "$OUT"/
OMP_NUM_THREADS=${THREADS:-1} nice -n 10 .venv/bin/liverlvt train --manifest "$M" --config "$CONFIG" \
  --quiet --out "$OUT" --exclude $A_OUT --stages fine --init-from "$V3" --max-minutes "${FINE_MIN:-55}"
