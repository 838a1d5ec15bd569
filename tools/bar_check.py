"""The model bar of the model issue, read off ``liverlvt evaluate`` results: pooled figures per
contrast phase and PASS / FAIL per line of the bar.

    .venv/bin/python tools/bar_check.py runs/cv-v3/metrics.json [more metrics.json ...]

Lesion sensitivity and precision are pooled over the cases (lesions found / reference lesions,
true / predicted lesions), not means of per-case ratios, so a case with one lesion does not
weigh like one with seven. Several files (e.g. one per fold or per rule variant of the same
cases) are pooled case by case; a case seen twice counts once (the last file wins).

The bar's CT-only line ("in CT-only cases from cohorts where every patient has a liver tumor, at
least one tumor found in each"): every evaluated CT-only phase whose labelled phase partner
(same study and day) holds a tumor; its predicted tumors are counted, and those within
``NEAR_MM`` of the partner's tumor labels (nearest-neighbour in physical space; the phases are
near-registered, minutes apart) count as found: a false find elsewhere does not pass.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LiverLVTLib.core.manifest import load_manifest, partner_labelled_cases  # noqa: E402
from LiverLVTLib.evaluation.metrics import class_mask, components  # noqa: E402

# the bar (issue 10, "Bar"): on unseen real CT
BAR = {"liver Dice": 0.93, "tumor Dice (portal-venous/arterial)": 0.50,
       "lesion sensitivity (portal-venous/arterial)": 0.80, "lesion precision (portal-venous/arterial)": 0.50,
       "vessel Dice": 0.40}
MAX_PAIR_PERCENT = 5.0
BAR_PHASES = ("portal-venous", "arterial")
NEAR_MM = 10.0  # a predicted tumor this close to the partner phase's labelled tumor is "near"


def pooled(cases: dict, info: dict, phases=None) -> dict:
    """Mean Dice per class and pooled lesion counts over the cases of ``phases`` (all if None)."""
    dice = {"liver": [], "vessel": [], "tumor": []}
    found = reference = true = predicted = 0
    for cid, scores in cases.items():
        if phases is not None and info.get(cid, {}).get("phase") not in phases:
            continue
        for name, record in scores.items():
            if record.get("dice") is not None:
                dice[name].append(record["dice"])
        tumor = scores.get("tumor")
        if tumor:
            found += tumor["lesions_found"]
            reference += tumor["reference_lesions"]
            predicted += tumor["predicted_lesions"]
            true += tumor["predicted_lesions"] - tumor["false_positive_lesions"]
    mean = {k: (sum(v) / len(v) if v else None) for k, v in dice.items()}
    return {"dice": mean, "found": found, "reference": reference, "true": true, "predicted": predicted,
            "sensitivity": found / reference if reference else None,
            "precision": true / predicted if predicted else None}


def ct_only_tumors(result: dict) -> list:
    """(case, predicted tumors, how many lie within NEAR_MM of the partner's tumor) for every
    evaluated CT-only phase whose labelled partner holds a tumor."""
    rows = []
    manifest = load_manifest(result["manifest"])
    for entry in partner_labelled_cases(manifest):
        prediction = result["case_info"].get(entry["id"], {}).get("prediction")
        if "tumor" not in entry["annotated"] or not prediction or not Path(prediction).is_file():
            continue
        pred = sitk.ReadImage(prediction)
        partner = sitk.Resample(sitk.ReadImage(str(Path(manifest["_root"]) / entry["labels"])), pred,
                                sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        reference = class_mask(sitk.GetArrayFromImage(partner), "tumor")
        if not reference.any():
            continue  # the study holds no liver tumor: not a tumor-cohort case
        ref_image = sitk.GetImageFromArray(reference.astype(np.uint8))
        ref_image.CopyInformation(pred)
        distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            ref_image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
        cc, n = components(class_mask(sitk.GetArrayFromImage(pred), "tumor"))
        near = np.unique(cc[(distance <= NEAR_MM) & (cc > 0)]).size
        rows.append((entry["id"], n, near))
    return rows


def _ratio(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(paths) -> int:
    cases, info, pairs, ct_only = {}, {}, {}, {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        ct_only.update({row[0]: row[1:] for row in ct_only_tumors(result)})
        cases.update(result["cases"])
        info.update(result["case_info"])
        pairs.update({(p["a"], p["b"]): p["liver_volume_diff_percent"] for p in result.get("phase_pairs", [])})
    phases = sorted({info[c]["phase"] for c in cases})
    print("| phase | cases | liver Dice | vessel Dice | tumor Dice | lesions found | true / predicted lesions |")
    print("|---|---|---|---|---|---|---|")
    for phase in phases + ["all"]:
        part = pooled(cases, info, None if phase == "all" else {phase})
        n = sum(1 for c in cases if phase == "all" or info[c]["phase"] == phase)
        print(f"| {phase} | {n} | {_ratio(part['dice']['liver'])} | {_ratio(part['dice']['vessel'])} | "
              f"{_ratio(part['dice']['tumor'])} | {part['found']}/{part['reference']} | "
              f"{part['true']}/{part['predicted']} |")
    every, bar = pooled(cases, info), pooled(cases, info, set(BAR_PHASES))
    figures = {"liver Dice": every["dice"]["liver"], "vessel Dice": every["dice"]["vessel"],
               "tumor Dice (portal-venous/arterial)": bar["dice"]["tumor"],
               "lesion sensitivity (portal-venous/arterial)": bar["sensitivity"],
               "lesion precision (portal-venous/arterial)": bar["precision"]}
    print()
    for name, need in BAR.items():
        got = figures[name]
        verdict = "n/a" if got is None else ("PASS" if got >= need else "FAIL")
        print(f"{verdict:4s} {name}: {_ratio(got)} (bar >= {need})")
    for (a, b), diff in pairs.items():
        verdict = "PASS" if diff <= MAX_PAIR_PERCENT else "FAIL"
        print(f"{verdict:4s} phase pair {a} / {b}: liver volumes differ by {diff:.1f} % (bar <= {MAX_PAIR_PERCENT})")
    for cid, (n, near) in sorted(ct_only.items()):
        print(f"{'PASS' if near else 'FAIL':4s} CT-only tumor-cohort case {cid}: {n} tumor(s) predicted, "
              f"{near} within {NEAR_MM:g} mm of the partner phase's labelled tumor (bar >= 1)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1:]))
