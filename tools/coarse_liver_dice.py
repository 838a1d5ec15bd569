"""Liver Dice of the coarse (whole-CT) stage alone, for comparing model folders case by case.

    .venv/bin/python tools/coarse_liver_dice.py --manifest ../shared/data/manifest.json \\
        --models runs/v7c3-b1 runs/v8-b1 --cases ircadb-1.7 radcttaceomics-1211-ap

For each case: the first stage's liver channel at 0.5, its largest component, against the
reference liver (liver + vessel + tumor) resampled onto that stage's grid; and the false-positive
volume. Only meaningful for a model that never saw the case.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest  # noqa: E402
from LiverLVTLib.core.preprocess import canonical, resample, to_model_grid  # noqa: E402
from LiverLVTLib.evaluation.metrics import dice, voxel_ml  # noqa: E402
from LiverLVTLib.segmentation.inference import predict  # noqa: E402
from LiverLVTLib.segmentation.model import load_card  # noqa: E402
from LiverLVTLib.segmentation.postprocess import largest_component  # noqa: E402


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--cases", nargs="+", required=True)
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    root = Path(args.manifest).resolve().parent
    entries = {e["id"]: e for e in manifest["cases"]}
    device = torch.device("cpu")
    for cid in args.cases:
        entry = entries[cid]
        canon = canonical(io.read_ct(root / entry["ct"]))
        reference = canonical(io.read_labels(root / entry["labels"]))
        row = []
        for model in args.models:
            stage = load_card(model).stages[0]
            grid = to_model_grid(canon, stage.spacing_mm)
            probs = predict(stage, stage.load_network(device), grid, device)
            truth = sitk.GetArrayFromImage(resample(reference, grid, sitk.sitkNearestNeighbor, 0,
                                                    sitk.sitkUInt8)) > 0
            liver = largest_component(probs[0] >= 0.5)
            fp_ml = np.count_nonzero(liver & ~truth) * voxel_ml(grid.GetSpacing())
            row.append(f"{Path(model).name} {dice(liver, truth):.3f} (false positive {fp_ml:.0f} mL)")
        print(cid, " | ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
