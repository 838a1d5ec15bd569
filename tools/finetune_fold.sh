#!/usr/bin/env bash
# A fine-stage recipe tried on top of recipe v3, in one cross-validation fold: that fold's v3
# coarse stage is kept, its fine stage is fine-tuned from the fold's v3 weights with CONFIG for
# FINE_MIN minutes (the cosine schedule follows them) on THREADS threads; a rerun resumes from
# OUT/checkpoints. The 3-fold CV of a recipe from the committed bases (tools/cv_bases.sh) runs
# through tools/cv_recipe.sh. V3_A / V3_B=none trains from scratch (no weights copied or loaded).
#   FOLD a: v3 fold A (V3_A, default runs/v3-a: the weights shipped until 2026-12-06, restored
#           from git show 48fe0ee:Resources/Models/lvt-unet/<file>), fold A's cases held out
#   FOLD b: v3 fold B (V3_B, default runs/v3-b: tools/train_cv_cpu_v3.sh b), fold B's held out
#   tools/finetune_fold.sh a configs/lvt-unet-v5.json runs/v5-a   # recipe v5
# Ablation: liverlvt evaluate --manifest M --folds OUT --cases <the fold's held-out cases> --no-tta,
# against the same with the fold's v3 folder; both folds: --folds OUT_A OUT_B.
# Recipe v4 (the equilibrium-phase look, compress_enhancement_prob 0.3, and the thick-slice look,
# thick_slice_prob 0.3, 2.5-5 mm slabs; 2500 iterations planned, lr 3e-4, channels-last), run
# 2026-12-02 with FINE_MIN=55 THREADS=2 (1227 fp32 iterations): worse than v3 (tumor Dice on
# ircadb-1.1 0.625 -> 0.530, false lesions 16 -> 21); not shipped (configs/lvt-unet-v3-card-notes.md).
# Recipe v5 (the vesselness input channel, "inputs": ["ct", "vesselness"], widened onto v3's
# weights at zero weight; 3000 iterations planned, lr 3e-4): the first run caches the channel in
# .traindata/fine/vesselness/. Run 2026-12-06 with FINE_MIN=54 THREADS=1 (2605 iterations): vessel
# Dice 0.569 -> 0.589, tumor Dice on ircadb-1.1 0.625 -> 0.536; not shipped (card notes).
# Its control (configs/lvt-unet-v5-control.json: the same fine-tune, 2605 iterations, no channel):
#   FINE_MIN=600 THREADS=2 tools/finetune_fold.sh a configs/lvt-unet-v5-control.json runs/v5c-a
# Recipe v6 (the control plus "phase_partner_labels": CT-only phases borrow their labelled
# partner's labels; a held-out case's partner leaves the fold with it), both folds side by side:
#   FINE_MIN=600 tools/finetune_fold.sh a configs/lvt-unet-v6.json runs/v6-a &
#   FINE_MIN=600 tools/finetune_fold.sh b configs/lvt-unet-v6.json runs/v6-b
# Recipe v7 (v6 with the borrowed phases supervised on the liver only, "phase_partner_labels":
# ["liver"]: v6's partners added false tumors on fold A), run 2026-12-06 side by side (47 min, pooled
# CV liver 0.904 -> 0.916, vessel 0.472 -> 0.507; card notes); the shipped release model is this
# recipe on every labelled case (tools/train_all.sh):
#   FINE_MIN=600 tools/finetune_fold.sh a configs/lvt-unet-v7.json runs/v7-a &
#   FINE_MIN=600 tools/finetune_fold.sh b configs/lvt-unet-v7.json runs/v7-b
# The coarse stage too (STAGES=coarse, MINUTES=40), on top of a fold's v7 folder, as the release
# model did (the CV of exactly the shipped recipe):
#   V3_A=runs/v7-a STAGES=coarse MINUTES=40 tools/finetune_fold.sh a configs/lvt-unet-v7.json runs/v7c-a &
#   V3_B=runs/v7-b STAGES=coarse MINUTES=40 tools/finetune_fold.sh b configs/lvt-unet-v7.json runs/v7c-b
# A 4-fold CV of the shipped recipe (each fold's halves continued from v7c-a / v7c-b with the
# other half added to their training data; one call per stage, as the time limit is shared by
# the stages of one call), b1 and b2 side by side, then a1 and a2:
#   for s in "coarse 28" "fine 36"; do set -- $s; V3_B=runs/v7c-b STAGES=$1 MINUTES=$2 \
#     tools/finetune_fold.sh b1 configs/lvt-unet-v7.json runs/v7c3-b1; done   # b2 alike
#   for s in "coarse 25" "fine 33"; do set -- $s; V3_A=runs/v7c-a STAGES=$1 MINUTES=$2 \
#     tools/finetune_fold.sh a1 configs/lvt-unet-v7.json runs/v7c3-a1; done   # a2 alike
# Recipe v8 (no left-right flip) against its control, fold A whole (the 3-fold CV a / b1 / b2),
# both continued from v7c-a side by side; the control is the same with configs/lvt-unet-v7.json:
#   for s in "coarse 28" "fine 36"; do set -- $s; V3_A=runs/v7c-a STAGES=$1 MINUTES=$2 \
#     tools/finetune_fold.sh a configs/lvt-unet-v8.json runs/v8-a; done   # runs/v7c4-a alike
# Recipe v9 (v8 + exophytic synthetic tumors) against v8 as its control: fold a from v7c-a and
# fold b1 from v7c-b, 28 + 36 min, side by side (runs/v9-a, runs/v9-b1 vs runs/v8-a, runs/v8-b1).
# Its fine stage ran at 1.6 s per iteration (the exophytic reach pooled a cubic box; pooled per
# axis since), 1259 / 1184 iterations against v8's 2029 / 1804.
# Recipe v10 (v9 with the exophytic tumors filling fat only, fine stage): v9's coarse stages kept
# (copy runs/v9-X/coarse.pt, model.json, training-coarse.json, checkpoints/coarse.ckpt, and the
# fold's v7c fine.pt into runs/v10-X), then the fine stage, side by side:
#   V3_A=runs/v7c-a STAGES=fine MINUTES=36 tools/finetune_fold.sh a configs/lvt-unet-v10.json runs/v10-a
#   V3_B=runs/v7c-b STAGES=fine MINUTES=36 tools/finetune_fold.sh b1 configs/lvt-unet-v10.json runs/v10-b1
# Recipe v11 (v10 with hard_negative_prob 0.35 in the fine stage) alike, into runs/v11-a / runs/v11-b1.
# Recipes v12 / v13 (more small and hyper-enhancing synthetic tumors) alike on v8's coarse stages
# (copy runs/v8-X's coarse files and the fold's v7c fine.pt into runs/v12-X), folds a, b1 and b2;
# the shipped soup per fold: tools/soup.py --stage fine --runs runs/v8r-X runs/v12-X --out runs/soup12-X
set -euo pipefail
cd "$(dirname "$0")/.."
FOLD=${1:?usage: $0 a|b|a1|a2|b1|b2 CONFIG OUT}
CONFIG=${2:?usage: $0 a|b|a1|a2|b1|b2 CONFIG OUT}
OUT=${3:?usage: $0 a|b|a1|a2|b1|b2 CONFIG OUT}
M=${MANIFEST:-../shared/data/manifest.json}
case "$FOLD" in
  a) HELD_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"; V3=${V3_A:-runs/v3-a} ;;
  b) HELD_OUT="crlm-1100 ircadb-1.7 lits-0 radcttaceomics-0697-eqp radcttaceomics-1211-ap"; V3=${V3_B:-runs/v3-b} ;;
  # each fold split in two (with fold A: a 3-fold CV; all four halves: a 4-fold CV, each model
  # training on 5-7 of the 8 labelled cases, nearer the release model's 8), warm-started from
  # that fold's weights (V3_A / V3_B), which never saw either half
  a1) HELD_OUT="ircadb-1.1"; V3=${V3_A:-runs/v3-a} ;;
  a2) HELD_OUT="radcttaceomics-2022-ap radcttaceomics-2144-eqp"; V3=${V3_A:-runs/v3-a} ;;
  b1) HELD_OUT="ircadb-1.7 radcttaceomics-1211-ap"; V3=${V3_B:-runs/v3-b} ;;
  b2) HELD_OUT="crlm-1100 lits-0 radcttaceomics-0697-eqp"; V3=${V3_B:-runs/v3-b} ;;
  *) echo "usage: $0 a|b|a1|a2|b1|b2 CONFIG OUT" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
INIT=()
if [ "$V3" != none ]; then
  [ -f "$OUT/model.json" ] || cp "$V3"/*.pt "$V3"/model.json "$OUT"/
  INIT=(--init-from "$V3")
fi
OMP_NUM_THREADS=${THREADS:-1} nice -n 10 .venv/bin/liverlvt train --manifest "$M" --config "$CONFIG" \
  --quiet --out "$OUT" --exclude $HELD_OUT --stages "${STAGES:-fine}" "${INIT[@]}" \
  --max-minutes "${MINUTES:-${FINE_MIN:-55}}"
