#!/usr/bin/env bash
# Recipe v3 of the shipped lvt-unet, on the 2-core CPU machine, one thread per process (minutes
# are wall-clock budgets; the cosine learning rate follows them; a rerun resumes from the
# checkpoints in OUT/checkpoints).
#   fold A (shipped): both stages warm-started from the v2 weights (git show 185db02:Resources/Models/lvt-unet/...),
#                     trained side by side: coarse 65 min, fine 105 min.
#   fold B (CV only): from scratch on fold A's held-out cases (v2's weights saw fold B's cases),
#                     coarse then fine; not yet done for v3: run `$0 b` (about 3 h, resumable).
# Then: liverlvt evaluate --manifest M --folds runs/v3-a runs/v3-b --no-tta --out runs/cv-v3 and
# tools/finalize_model.py --run runs/v3-a --eval runs/cv-v3/metrics.json --config configs/lvt-unet-v3.json ...
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MANIFEST:-../shared/data/manifest.json}
A_OUT="ircadb-1.1 radcttaceomics-2022-ap radcttaceomics-2144-eqp"
B_OUT="crlm-1100 ircadb-1.7 lits-0 radcttaceomics-0697-eqp radcttaceomics-1211-ap"
V2=${V2:-Resources/Models/lvt-unet}  # a folder with the v2 coarse.pt / fine.pt / model.json
train() { OMP_NUM_THREADS=1 nice -n 10 .venv/bin/liverlvt train --manifest "$M" --config configs/lvt-unet-v3.json --quiet "$@"; }
case "${1:-a}" in
  a)
    mkdir -p runs/v3-a && cp "$V2"/*.pt "$V2"/model.json runs/v3-a/
    ( train --out runs/v3-a --exclude $A_OUT --stages fine --init-from "$V2" --max-minutes 105 ) & fine=$!
    ( train --out runs/v3-a --exclude $A_OUT --stages coarse --init-from "$V2" --max-minutes 65 ) & coarse=$!
    wait "$fine"; wait "$coarse" ;;
  b)
    ( train --out runs/v3-b --exclude $B_OUT --stages coarse --max-minutes "${COARSE_MIN:-60}" ) & coarse=$!
    ( train --out runs/v3-b --exclude $B_OUT --stages fine --max-minutes "${FINE_MIN:-150}" ) & fine=$!
    wait "$coarse"; wait "$fine" ;;
  *) echo "usage: $0 a|b" >&2; exit 2 ;;
esac
# the post-processing of the card (tumor_mimics) comes from the config's "postprocess"
