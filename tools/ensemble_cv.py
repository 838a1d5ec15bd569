#!/usr/bin/env python3
"""Cross-validation of a probability ensemble: each case segmented by the mean of the class
probabilities of several recipes' fold models (the same fold, so the same held-out cases and the
same coarse stage), then the first model's clean-up; the labels go to OUT/<id>/labels.nii.gz
for ``liverlvt evaluate --pred-dir`` (the ensemble of fine stages costs one fine pass per member
at inference; compare tools/soup.py, which averages weights at no inference cost).

    .venv/bin/python tools/ensemble_cv.py --cv runs/cv-p12 --recipes p12 p14 p17 --out runs/ens-3
    .venv/bin/liverlvt evaluate --manifest ../shared/data/manifest.json --pred-dir runs/ens-3 \\
        --out runs/cv-ens-3

``--cv``: a ``liverlvt evaluate --folds`` output whose metrics.json maps fold folders
(``runs/<recipe>-<fold>``) to their held-out cases; each recipe needs the same fold names.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.segmentation import pipeline  # noqa: E402


def ensemble_labels(ct: sitk.Image, models: list) -> sitk.Image:
    outs = [pipeline.predict_probabilities(ct, model_dir=m, device="cpu") for m in models]
    if any(o.probs.shape != outs[0].probs.shape for o in outs):
        raise SystemExit("the members' last-stage grids differ: ensemble models of the same fold")
    mean = np.mean([o.probs for o in outs], axis=0)
    return pipeline.labels_from_probabilities(dataclasses.replace(outs[0], probs=mean))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", type=Path, required=True)
    parser.add_argument("--recipes", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, default=Path("../shared/data/manifest.json"))
    args = parser.parse_args(argv)
    entries = {e["id"]: e for e in load_manifest(args.manifest)["cases"]}
    folds = json.loads((args.cv / "metrics.json").read_text())["folds"]
    runs = args.cv.parent
    for fold, cases in folds.items():
        suffix = fold.rsplit("-", 1)[1]
        models = [runs / f"{recipe}-{suffix}" for recipe in args.recipes]
        for cid in cases:
            dest = args.out / cid / "labels.nii.gz"
            if dest.exists():
                continue
            labels = ensemble_labels(io.read_ct(args.manifest.parent / entries[cid]["ct"]), models)
            dest.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(labels, str(dest), True)
            print(f"{cid}: {', '.join(m.name for m in models)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
