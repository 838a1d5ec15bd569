"""Peak tumor probability of every tumor candidate, true or false: the figures behind the card's
``postprocess.tumor_min_peak_probability`` (hysteresis, :func:`~LiverLVTLib.segmentation.
postprocess.unconfident_tumors`).

    .venv/bin/python tools/tumor_peaks.py --model Resources/Models/lvt-unet \
        --manifest ../shared/data/manifest.json --cases ircadb-1.1 radcttaceomics-1211-eqp

Runs the network once per case, cleans its labels with the card's rules but that one switched
off, and prints per candidate its volume, the share covered by the reference tumor (> 10 %:
true) and its peak probability (the network's tumor channel, linearly resampled to the CT grid;
``-log10(1 - peak)`` beside it). A
CT-only case with a labelled phase partner (``pair_of``) is scored against the partner's labels
placed by physical coordinates: exact for a shared frame of reference (radcttaceomics-1211),
approximate otherwise. Run it on cases the model never trained on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.labels import TUMOR  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.core.preprocess import labels_to_grid, resample  # noqa: E402
from LiverLVTLib.evaluation.metrics import DETECTION_FRACTION, components  # noqa: E402
from LiverLVTLib.segmentation import pipeline  # noqa: E402

RULE = "tumor_min_peak_probability"


def reference(entry: dict, entries: dict, root: Path, ct: sitk.Image) -> np.ndarray:
    source = entry if entry.get("labels") else entries.get(entry.get("pair_of"), {})
    if not source.get("labels"):
        return np.zeros(ct.GetSize()[::-1], np.uint8)
    return sitk.GetArrayFromImage(labels_to_grid(io.read_labels(root / source["labels"]), ct))


def case_rows(ct: sitk.Image, model: Path, ref: np.ndarray) -> list:
    out = pipeline.predict_probabilities(ct, model_dir=model, device="cpu")
    tumor_p = sitk.GetArrayFromImage(resample(out.channel_image("tumor"), ct, sitk.sitkLinear, 0.0,
                                              sitk.sitkFloat32))
    rule_off = dict(out.card.postprocess, **{RULE: 0.0})
    pred = sitk.GetArrayFromImage(pipeline.labels_from_probabilities(out, rules=rule_off))
    ml = float(np.prod(ct.GetSpacing())) / 1000.0
    cc, n = components(pred == TUMOR)
    rows = []
    for k in range(1, n + 1):
        comp = cc == k
        peak = float(tumor_p[comp].max())
        covered = float((ref[comp] == TUMOR).mean())
        rows.append({"ml": round(float(comp.sum()) * ml, 2), "covered": round(covered, 2),
                     "true": covered > DETECTION_FRACTION, "peak": round(peak, 4),
                     "nines": round(-float(np.log10(max(1e-12, 1.0 - peak))), 2)})
    return sorted(rows, key=lambda r: -r["ml"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args()
    root = args.manifest.parent
    entries = {e["id"]: e for e in load_manifest(args.manifest)["cases"]}
    table = {}
    print("| case | candidate mL | covered | verdict | peak | nines: -log10(1-peak) |\n|---|---|---|---|---|---|")
    for cid in args.cases:
        ct = io.read_ct(root / entries[cid]["ct"])
        table[cid] = case_rows(ct, args.model, reference(entries[cid], entries, root, ct))
        for r in table[cid]:
            print(f"| {cid} | {r['ml']} | {r['covered']} | {'true' if r['true'] else 'FALSE'} | "
                  f"{r['peak']} | {r['nines']} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
