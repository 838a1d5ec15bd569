#!/usr/bin/env python3
"""Per-lesion appearance of the annotated liver tumors of a manifest: volume, mean HU offset from
the liver parenchyma (its median, and the 5 mm parenchyma ring around the lesion), HU SD inside
the lesion and its 10th / 90th percentiles. It calibrates the synthetic tumors' ``contrast_hu``
ranges and ``keep_grain`` (training/tumor_synthesis.py) against the real ones.

    .venv/bin/python tools/tumor_contrast.py --manifest ../shared/data/manifest.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.labels import LIVER, TUMOR  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.evaluation.metrics import components, voxel_ml  # noqa: E402
from LiverLVTLib.training.partners import tumor_contrasts  # noqa: E402

MIN_ML = 0.1


def lesion_rows(ct, labels_image) -> tuple:
    """(parenchyma median, parenchyma SD within 60 HU of it, one dict per lesion >= MIN_ML); the
    ring contrast is the one the phase-partner gate reads (training/partners.tumor_contrasts)."""
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    labels = sitk.GetArrayFromImage(labels_image)
    spacing_zyx = ct.GetSpacing()[::-1]
    parenchyma = labels == LIVER
    median = float(np.median(hu[parenchyma]))
    near = hu[parenchyma][np.abs(hu[parenchyma] - median) < 60]
    cc, n = components(labels == TUMOR)  # cc3d, 26-connected: the ids tumor_contrasts numbers
    rings = tumor_contrasts(ct, labels_image)
    rows = []
    for i in range(1, n + 1):
        lesion = cc == i
        ml = float(lesion.sum()) * voxel_ml(spacing_zyx)
        if ml < MIN_ML:
            continue
        vals = hu[lesion]
        rows.append({"ml": ml, "offset": float(vals.mean()) - median, "ring": rings[i - 1],
                     "sd": float(vals.std()), "p10": float(np.percentile(vals, 10)) - median,
                     "p90": float(np.percentile(vals, 90)) - median})
    return median, float(near.std()), rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="../shared/data/manifest.json")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    root = Path(manifest["_root"])
    for case in manifest["cases"]:
        if "tumor" not in case.get("annotated", []):
            continue
        ct = io.read_ct(root / case["ct"])
        median, sd, rows = lesion_rows(ct, io.read_labels(root / case["labels"], ct))
        print(f"{case['id']} ({case.get('phase')}): parenchyma median {median:.0f} HU, SD {sd:.1f}")
        for r in rows:
            print(f"  {r['ml']:7.2f} mL  offset {r['offset']:+4.0f}  ring {r['ring']:+4.0f}  "
                  f"SD {r['sd']:4.1f}  p10 {r['p10']:+4.0f}  p90 {r['p90']:+4.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
