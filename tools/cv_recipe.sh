#!/usr/bin/env bash
# The 3-fold cross-validation of a fine-stage recipe, from the bases of tools/cv_bases.sh, in one
# command (resumable: each step skips what its folder already holds; runs/ is scratch):
#   tools/cv_recipe.sh CONFIG NAME      e.g. tools/cv_recipe.sh configs/lvt-unet-v14.json p14
#   1. the bases: runs/v3-a (fold A, from git) and runs/base-b (fold B, from tools/cv-bases/fold-b;
#      without a packed base this step stops: tools/cv_bases.sh b trains it, about 150 min)
#   2. the coarse stages of b1 / b2 (shared by every recipe: base-b's coarse continued with the
#      fold's other half added, configs/lvt-unet-v8.json, COARSE_MIN minutes, side by side):
#      runs/cb-b1, runs/cb-b2; fold a keeps v3-a's coarse stage
#   3. the fold models runs/NAME-a, NAME-b1, NAME-b2: the fine stage fine-tuned with CONFIG, all
#      three side by side on the 2 cores, one thread each, FINE_MIN minutes (default 54: about 36
#      minutes of one core each; compare recipes by the iterations their cards record)
#   4. liverlvt evaluate --folds ... -> runs/cv-NAME/metrics.json, then tools/bar_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: $0 CONFIG NAME}
NAME=${2:?usage: $0 CONFIG NAME}
M=${MANIFEST:-../shared/data/manifest.json}
[ -f runs/v3-a/fine.pt ] || tools/cv_bases.sh a
if [ ! -f runs/base-b/model.json ]; then
  [ -f tools/cv-bases/fold-b/fine.pt ] || { echo "no fold-B base: run tools/cv_bases.sh b first (about 150 min)" >&2; exit 2; }
  tools/cv_bases.sh b
fi
for half in b1 b2; do
  [ -f "runs/cb-$half/training-coarse.json" ] || V3_B=runs/base-b STAGES=coarse MINUTES=${COARSE_MIN:-28} \
    tools/finetune_fold.sh "$half" configs/lvt-unet-v8.json "runs/cb-$half" &
done
wait
pids=()
for fold in a b1 b2; do
  out=runs/$NAME-$fold
  [ -f "$out/training-fine.json" ] && continue
  if [ "$fold" = a ]; then base=runs/v3-a; var=V3_A; else base=runs/cb-$fold; var=V3_B; fi
  env "$var=$base" MINUTES="${FINE_MIN:-54}" tools/finetune_fold.sh "$fold" "$CONFIG" "$out" > "runs/$NAME-$fold.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
OMP_NUM_THREADS=2 .venv/bin/liverlvt evaluate --manifest "$M" --folds "runs/$NAME-a" "runs/$NAME-b1" "runs/$NAME-b2" \
  --no-tta --device cpu --out "runs/cv-$NAME"
.venv/bin/python tools/bar_check.py "runs/cv-$NAME/metrics.json"
