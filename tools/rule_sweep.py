"""Post-processing rules measured on the cross-validation without re-running the networks.

Each labelled case (and each CT-only phase partner, for the phase-pair volume) is segmented once
by the fold model that never saw its study; the last stage's probabilities are cached
(``--cache``, float32 as computed, with the CT on that grid: rounding them would move
candidates across the peak rule and HU tests). Every variant (a JSON object merged over the fold card's
``postprocess`` block) then runs the pipeline's own label half
(``segmentation.pipeline.labels_from_probabilities``) and is scored like ``liverlvt evaluate``:

  .venv/bin/python tools/rule_sweep.py --manifest ../shared/data/manifest.json \\
      --folds runs/v7c-a runs/v7c-b --cache runs/probs-v7c \\
      --variant base '{}' --variant grow03 '{"tumor_grow_probability": 0.3}'

Prints one row per variant: mean liver / vessel / tumor Dice, lesions found / true, predicted
lesions, and the phase pairs' liver-volume difference. A rule chosen here is chosen on the cases
it is scored on: say so where it is reported.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.evaluation.crossval import assign_folds, load_folds  # noqa: E402
from LiverLVTLib.evaluation.evaluate import phase_pairs, score_images, spacing_zyx  # noqa: E402
from LiverLVTLib.evaluation.metrics import class_mask, relative_difference_percent, voxel_ml  # noqa: E402
from LiverLVTLib.segmentation.model import load_card  # noqa: E402
from LiverLVTLib.segmentation.pipeline import (  # noqa: E402
    StageOutput,
    labels_from_probabilities,
    predict_probabilities,
)


def cached_output(entry, root: Path, model: Path, cache: Path) -> StageOutput:
    """The fold model's last-stage probabilities for one case, from the cache or computed."""
    ct = io.read_ct(root / entry["ct"])
    card = load_card(model)
    path = cache / f"{entry['id']}.npz"
    if path.is_file():
        data = np.load(path)
        grid = sitk.GetImageFromArray(data["hu"].astype(np.float32))  # the CT on the last stage's grid
        grid.SetOrigin([float(v) for v in data["origin"]])
        grid.SetSpacing([float(v) for v in data["spacing"]])
        grid.SetDirection([float(v) for v in data["direction"]])
        return StageOutput(ct, card, data["probs"].astype(np.float32), grid)
    out = predict_probabilities(ct, model_dir=model, tta=False, device="cpu")
    cache.mkdir(parents=True, exist_ok=True)
    g = out.grid
    np.savez_compressed(path, probs=out.probs.astype(np.float32),
                        hu=sitk.GetArrayFromImage(g).astype(np.float32), origin=g.GetOrigin(),
                        spacing=g.GetSpacing(), direction=g.GetDirection())
    return out


def liver_ml(labels: sitk.Image) -> float:
    """Predicted liver volume (liver, vessel and tumor), as ``liverlvt evaluate`` counts it."""
    return float(np.count_nonzero(class_mask(sitk.GetArrayViewFromImage(labels), "liver"))) \
        * voxel_ml(spacing_zyx(labels))


def score_variant(outputs, references, annotated, rules_of, pairs) -> dict:
    """Pooled scores of one variant over the cached outputs."""
    dice = {"liver": [], "vessel": [], "tumor": []}
    found = true_lesions = predicted = 0
    volumes, per_case = {}, {}
    for cid, out in outputs.items():
        pred = labels_from_probabilities(out, rules=rules_of(out))
        volumes[cid] = liver_ml(pred)
        if cid not in references:
            continue
        scores = score_images(pred, references[cid], annotated[cid])
        for name in dice:
            if name in scores and scores[name].get("dice") is not None:
                dice[name].append(scores[name]["dice"])
        tumor = scores.get("tumor") or {}
        found += int(tumor.get("lesions_found") or 0)
        true_lesions += int(tumor.get("reference_lesions") or 0)
        predicted += int(tumor.get("predicted_lesions") or 0)
        per_case[cid] = {name: round(scores[name]["dice"], 3) for name in scores
                         if scores[name].get("dice") is not None}
    pair_diff = {f"{a}|{b}": round(relative_difference_percent(volumes[a], volumes[b]) or 0.0, 1)
                 for a, b in pairs if a in volumes and b in volumes}
    return {name: round(float(np.mean(v)), 3) if v else None for name, v in dice.items()} | {
        "found": found, "reference_lesions": true_lesions, "predicted_lesions": predicted,
        "pairs_percent": pair_diff, "cases": per_case}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--folds", nargs="+", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    root = Path(args.manifest).resolve().parent
    entries = [e for e in manifest["cases"] if e.get("labels") or e.get("pair_of")]
    if args.cases:
        entries = [e for e in entries if e["id"] in set(args.cases)]
    folds = load_folds(args.folds)
    assignment = assign_folds(entries, {name: f["trained"] for name, f in folds.items()})
    outputs, references, annotated = {}, {}, {}
    for entry in entries:
        cid = entry["id"]
        outputs[cid] = cached_output(entry, root, folds[assignment[cid]]["path"], Path(args.cache))
        if entry.get("labels"):
            references[cid] = io.read_labels(root / entry["labels"])
            annotated[cid] = [c for c in ("liver", "vessel", "tumor") if c in entry["annotated"]]
        print(f"ready: {cid} ({assignment[cid]})", flush=True)
    pairs = phase_pairs(entries)
    rows = {}
    for name, text in args.variant:
        change = json.loads(text)
        rows[name] = score_variant(outputs, references, annotated,
                                   lambda out: {**out.card.postprocess, **change}, pairs)
        print(name, json.dumps(rows[name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
