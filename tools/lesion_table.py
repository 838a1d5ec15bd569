"""Per-lesion table of a manifest evaluation: every predicted tumor component (true or false, with
the features the post-processing rules read) and every reference tumor (found or missed).

    .venv/bin/python tools/lesion_table.py --eval runs/cv-v3/metrics.json \
        --manifest ../shared/data/manifest.json [--cases ID ...] [--json OUT.json]

Reads the predictions ``liverlvt evaluate`` saved (``case_info.<id>.prediction``), the reference
labels and the CT; writes nothing unless ``--json``. Features per component: volume (mL), share
inside the other side (the detection rule of :mod:`LiverLVTLib.evaluation.metrics`), liver share
of its 2-voxel shell (:func:`~LiverLVTLib.segmentation.postprocess.liver_contact`) and median HU
minus the median of the predicted liver parenchyma (dHU), number of axial CT slices it spans; per
case the predicted vessels' median HU minus the same parenchyma median (none under 1 mL).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from LiverLVTLib.analysis.lesions import expand_slices  # noqa: E402
from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.labels import LIVER, TUMOR, VESSEL  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.evaluation.evaluate import spacing_zyx  # noqa: E402
from LiverLVTLib.evaluation.metrics import DETECTION_FRACTION, components, voxel_ml  # noqa: E402
from LiverLVTLib.segmentation.postprocess import liver_contact  # noqa: E402


def component_rows(side: np.ndarray, other: np.ndarray, labels: np.ndarray, hu: np.ndarray,
                   parenchyma_hu: float, ml: float) -> list:
    """One row per 26-connected tumor component of ``side`` (a label map): its features, and the
    share of it covered by the other side's tumor."""
    cc, _ = components(side == TUMOR)
    rows = []
    for index, box in enumerate(ndimage.find_objects(cc), start=1):
        if box is None:
            continue
        box = expand_slices(box, cc.shape, (3, 3, 3))
        comp = cc[box] == index
        rows.append({"ml": round(float(comp.sum()) * ml, 3), "slices": int(comp.any(axis=(1, 2)).sum()),
                     "covered": round(float((other[box][comp] == TUMOR).mean()), 3),
                     "liver_contact": round(liver_contact(comp, labels[box]), 3),
                     "dhu": round(float(np.median(hu[box][comp])) - parenchyma_hu, 1)})
    return sorted(rows, key=lambda r: -r["ml"])


def case_table(entry: dict, root: Path, prediction: Path) -> dict:
    pred = sitk.GetArrayFromImage(io.read_labels(prediction))
    ref_img = io.read_labels(root / entry["labels"])
    ref = sitk.GetArrayFromImage(ref_img)
    hu = sitk.GetArrayFromImage(io.read_ct(root / entry["ct"])).astype(np.float32)
    ml = voxel_ml(spacing_zyx(ref_img))
    parenchyma = float(np.median(hu[pred == LIVER])) if (pred == LIVER).any() else 0.0
    vessel = pred == VESSEL
    vessel_dhu = round(float(np.median(hu[vessel])) - parenchyma, 1) if vessel.sum() * ml >= 1.0 else None
    return {"predicted": component_rows(pred, ref, pred, hu, parenchyma, ml),
            "reference": component_rows(ref, pred, pred, hu, parenchyma, ml), "vessel_dhu": vessel_dhu}


def markdown(tables: dict) -> str:
    lines = ["| case | side | mL | axial slices | covered | verdict | liver contact | dHU |",
             "|---|---|---|---|---|---|---|---|"]
    for cid, table in tables.items():
        lines.append(f"| {cid} | predicted vessels | | | | | | {table['vessel_dhu']} |")
        for side, good, bad in (("reference", "found", "MISSED"), ("predicted", "true", "FALSE")):
            for r in table[side]:
                verdict = good if r["covered"] > DETECTION_FRACTION else bad
                lines.append(f"| {cid} | {side} | {r['ml']} | {r['slices']} | {r['covered']} | {verdict} | "
                             f"{r['liver_contact']} | {r['dhu']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, required=True, help="liverlvt evaluate's metrics.json")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    metrics = json.loads(args.eval.read_text())
    manifest = load_manifest(args.manifest)
    entries = {e["id"]: e for e in manifest["cases"]}
    tables = {}
    for cid, info in metrics["case_info"].items():
        entry = entries.get(cid)
        if (args.cases and cid not in args.cases) or not entry or "tumor" not in (entry.get("annotated") or []):
            continue
        tables[cid] = case_table(entry, Path(manifest["_root"]), Path(info["prediction"]))
    print(markdown(tables))
    if args.json:
        args.json.write_text(json.dumps(tables, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
