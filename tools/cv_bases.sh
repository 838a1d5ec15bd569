#!/usr/bin/env bash
# The cross-validation bases: one warm-start folder per fold family that never saw that family's
# held-out cases, so every fold model of a recipe can be rebuilt from git in one fine-tune
# (tools/finetune_fold.sh) instead of a chain of sessions (the runs/ folder does not always
# survive between sessions: on 2026-12-07 it did not, and every fold model was lost).
#   a: fold A's base, restored from git (48fe0ee: recipe v3 fold A, shipped until 2026-12-06;
#      held out: ircadb-1.1, radcttaceomics-2022-ap, radcttaceomics-2144-eqp and their partners)
#   b: fold B's base (held out: crlm-1100, ircadb-1.7, lits-0, radcttaceomics-0697-eqp,
#      radcttaceomics-1211-ap and their partners), from tools/cv-bases/fold-b where committed,
#      else trained from scratch on fold A's cases with configs/lvt-unet-v12-scratch.json (recipe
#      v12 at from-scratch learning rates), coarse COARSE_MIN ‖ fine FINE_MIN minutes side by side,
#      one thread each (resumable: a rerun continues from runs/base-b/checkpoints)
#   tools/cv_bases.sh a            # -> runs/v3-a
#   tools/cv_bases.sh b            # -> runs/base-b
# Then the 3-fold CV of a fine-stage recipe on these bases: tools/cv_recipe.sh CONFIG NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:?usage: $0 a|b}" in
  a)
    mkdir -p runs/v3-a
    for f in coarse.pt fine.pt model.json; do git show "48fe0ee:Resources/Models/lvt-unet/$f" > "runs/v3-a/$f"; done ;;
  b)
    OUT=runs/base-b
    mkdir -p "$OUT"
    if [ -f tools/cv-bases/fold-b/fine.pt ] && [ ! -f "$OUT/fine.pt" ]; then
      cp tools/cv-bases/fold-b/* "$OUT"/; exit 0
    fi
    # fold B's held-out cases come from finetune_fold.sh (their one home); no warm start
    train() { V3_B=none STAGES=$1 MINUTES=$2 tools/finetune_fold.sh b configs/lvt-unet-v12-scratch.json "$OUT"; }
    ( train fine "${FINE_MIN:-150}" ) & fine=$!
    ( train coarse "${COARSE_MIN:-60}" ) & coarse=$!
    wait "$fine"; wait "$coarse" ;;
  *) echo "usage: $0 a|b" >&2; exit 2 ;;
esac
