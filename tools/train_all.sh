#!/usr/bin/env bash
# The release model: a recipe trained on every labelled case of the manifest (no fold held out),
# both stages warm-started from INIT (default runs/v3-a: fold A of recipe v3, the weights shipped
# until 2026-12-06, git show 48fe0ee:Resources/Models/lvt-unet/<file>) and trained side by side,
# one thread each, COARSE_MIN / FINE_MIN minutes (the cosine schedule follows them); a rerun
# resumes from OUT/checkpoints.
#   tools/train_all.sh configs/lvt-unet-v7.json runs/all-v7   # shipped 2026-12-06 until v8
#   INIT=runs/all-v7 COARSE_MIN=28 FINE_MIN=36 tools/train_all.sh configs/lvt-unet-v8.json runs/all-v8
#     # the model shipped since 2026-12-06 (fifth session); stopped by a session end and resumed
#     # with COARSE_MIN=16 FINE_MIN=20 (a resumed run's budget counts from the resume); since
#     # 2026-12-07 with the two liver rules in its card (runs/all-v8r: liver_core_probability,
#     # roi.within_mm; the weights unchanged)
#   INIT=runs/all-v8 COARSE_MIN=28 FINE_MIN=36 tools/train_all.sh configs/lvt-unet-v10.json runs/all-v10
#     # recipe v10 (exophytic synthetic tumors), trained 2026-12-07, not shipped (card notes)
#   recipe v12's fine stage alone (all-v8's coarse files and all-v7's fine.pt copied into
#   runs/all-v12), 36 min on 1 thread:
#     liverlvt train --manifest M --config configs/lvt-unet-v12.json --out runs/all-v12 \
#       --init-from runs/all-v7 --stages fine --max-minutes 36
#   the model shipped since 2026-12-07 (seventh session), a fine-stage soup of the two:
#     tools/soup.py --stage fine --runs runs/all-v8r runs/all-v12 --out runs/all-s12
#   and since the eighth session with the two tumor rules in its card (runs/all-s12r: the card's
#   postprocess gained tumor_fill_mm and tumor_fluid_max_hu, as in configs/lvt-unet-v8.json)
# Cross-validation scores the recipe (tools/finetune_fold.sh, tools/train_cv_cpu_v3.sh); this
# model can only be checked on what it never saw: the CT-only phase partners (when the recipe
# does not borrow their labels), the demo phantom and CT outside ../shared:
#   liverlvt evaluate --manifest M --model OUT --cases <partners and their labelled phases> --no-tta
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: $0 CONFIG OUT}
OUT=${2:?usage: $0 CONFIG OUT}
M=${MANIFEST:-../shared/data/manifest.json}
INIT=${INIT:-runs/v3-a}
mkdir -p "$OUT"
[ -f "$OUT/model.json" ] || cp "$INIT"/*.pt "$INIT"/model.json "$OUT"/
train() { OMP_NUM_THREADS=1 nice -n 10 .venv/bin/liverlvt train --manifest "$M" --config "$CONFIG" \
  --quiet --out "$OUT" --init-from "$INIT" "$@"; }
( train --stages coarse --max-minutes "${COARSE_MIN:-40}" ) & coarse=$!
( train --stages fine --max-minutes "${FINE_MIN:-70}" ) & fine=$!
wait "$coarse"; wait "$fine"
