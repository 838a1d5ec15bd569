#!/usr/bin/env python3
"""Why a reference tumor is missed: per labelled lesion of a cross-validation, what its fold's
network said inside it (the largest tumor and vessel probabilities) and how a hand-made
detector would rank it: the Hessian "blob" score (all three eigenvalues of the smoothed CT one
sign, sigma^2 |l1|, scales 2.5 / 3.5 / 5 mm: lesions 10-20 mm across) at its local maxima inside
the predicted liver (on a 1.5 mm grid over the liver box, 4.5 mm in from the surface, the mean
HU 7.5 mm around the peak at least 12 HU off the parenchyma median); bright peaks for a lesion
brighter than the parenchyma, dark ones otherwise. Rank 0: no false peak (away from every
reference tumor) scores higher; the false peaks above it are listed.

    .venv/bin/python tools/lesion_probe.py --cv runs/cv-p12 --manifest ../shared/data/manifest.json

``--cv`` is a ``liverlvt evaluate --folds`` output folder (its metrics.json names each case's
fold model, under runs/ beside it; its labels give the liver).
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

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.labels import LIVER, TUMOR  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.core.preprocess import labels_to_grid, resample, resampled_grid  # noqa: E402
from LiverLVTLib.evaluation.metrics import components  # noqa: E402
from LiverLVTLib.segmentation import pipeline  # noqa: E402
from LiverLVTLib.segmentation.vesselness import hessian_eigenvalues  # noqa: E402

SIGMAS_MM = (2.5, 3.5, 5.0)
MIN_CONTRAST_HU = 12.0
GRID_MM = 1.5  # the probe's isotropic grid over the liver box


def blob_peaks(hu: np.ndarray, pred: np.ndarray, spacing, sign: int):
    """(score map, peak mask) of sign-bright blobs inside the predicted liver (see the module)."""
    liver = pred > 0
    parenchyma = float(np.median(hu[pred == LIVER]))
    reach = max(1, round(4.5 / min(spacing)))  # 4.5 mm: the edge's HU step is no blob
    x = np.where(ndimage.binary_dilation(liver, iterations=reach), np.clip(hu, -100, 300), parenchyma)
    x = np.pad((x * sign).astype(np.float32), 1, mode="edge")
    inner = np.pad(ndimage.binary_erosion(liver, iterations=reach), 1)
    flat = np.flatnonzero(inner)
    best = np.zeros(flat.size, np.float32)
    for sigma in SIGMAS_MM:
        values = hessian_eigenvalues(ndimage.gaussian_filter(x, sigma / np.asarray(spacing)), flat, spacing)
        np.maximum(best, np.where((values < 0).all(1), np.abs(values[:, 0]), 0) * sigma ** 2, out=best)
    score = np.zeros(x.shape, np.float32)
    score.ravel()[flat] = best
    score = score[1:-1, 1:-1, 1:-1]
    window = [max(1, round(7.5 / s)) for s in spacing]
    contrast = (ndimage.uniform_filter(hu, window) - parenchyma) * sign
    size = [2 * max(1, round(5.0 / s)) + 1 for s in spacing]
    peaks = (score == ndimage.maximum_filter(score, size=size)) & (score > 0) & (contrast > MIN_CONTRAST_HU)
    return score, peaks


def liver_box_grid(pred: sitk.Image) -> sitk.Image:
    """A GRID_MM isotropic grid over the predicted organ's bounding box."""
    idx = np.argwhere(sitk.GetArrayViewFromImage(pred) > 0)
    lo, hi = idx.min(0)[::-1], idx.max(0)[::-1] + 1
    return resampled_grid(pred[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], (GRID_MM,) * 3)


def probe_case(entry: dict, root: Path, model: Path, pred_path: Path) -> list:
    ct = io.read_ct(root / entry["ct"])
    pred_image = sitk.ReadImage(str(pred_path))
    grid = liver_box_grid(pred_image)

    def on_grid(image, interpolator=sitk.sitkNearestNeighbor, default=0.0):
        return sitk.GetArrayFromImage(resample(image, grid, interpolator, default, sitk.sitkFloat32))

    hu = on_grid(ct, sitk.sitkLinear, -1024.0)
    ref = on_grid(labels_to_grid(io.read_labels(root / entry["labels"]), ct)).astype(np.uint8)
    pred = on_grid(pred_image).astype(np.uint8)
    out = pipeline.predict_probabilities(ct, model_dir=model, device="cpu")
    tumor_p, vessel_p = (on_grid(out.channel_image(c), sitk.sitkLinear) for c in ("tumor", "vessel"))
    spacing = (GRID_MM,) * 3
    parenchyma = float(np.median(hu[pred == LIVER]))
    maps = {sign: blob_peaks(hu, pred, spacing, sign) for sign in (1, -1)}
    near_any = ndimage.binary_dilation(ref == TUMOR, iterations=2)
    comps, n = components(ref == TUMOR)
    rows = []
    for k in range(1, n + 1):
        lesion = comps == k
        sign = 1 if hu[lesion].mean() > parenchyma else -1
        score, peaks = maps[sign]
        own = peaks & ndimage.binary_dilation(lesion, iterations=2)
        best = float(score[own].max()) if own.any() else 0.0
        false = score[peaks & ~near_any]
        rows.append({"ml": round(float(lesion.sum()) * float(np.prod(spacing)) / 1000, 2),
                     "dHU": round(float(hu[lesion].mean()) - parenchyma),
                     "max_tumor_p": round(float(tumor_p[lesion].max()), 3),
                     "max_vessel_p": round(float(vessel_p[lesion].max()), 3),
                     "blob": round(best, 1), "blob_rank": int((false > best).sum()) if best else None,
                     "false_peaks_above": [round(float(v), 1) for v in np.sort(false[false > best])[::-1][:5]]
                     if best else []})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args(argv)
    root = args.manifest.parent
    entries = {e["id"]: e for e in load_manifest(args.manifest)["cases"]}
    folds = json.loads((args.cv / "metrics.json").read_text())["folds"]
    print("| case | mL | dHU | max tumor p | max vessel p | blob score | blob rank | false peaks above |")
    print("|---|---|---|---|---|---|---|---|")
    for fold, cases in folds.items():
        for cid in cases:
            if not entries[cid].get("labels"):
                continue
            rows = probe_case(entries[cid], root, args.cv.parent / fold, args.cv / cid / "labels.nii.gz")
            for r in rows:
                print(f"| {cid} | {r['ml']} | {r['dHU']:+d} | {r['max_tumor_p']} | {r['max_vessel_p']} | "
                      f"{r['blob']} | {r['blob_rank']} | {r['false_peaks_above']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
