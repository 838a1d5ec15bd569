#!/usr/bin/env python3
"""How well a CT-only phase's borrowed labels fit it, moved as they are (same frame) and after the
registration inside the liver (training/partners.py): the moved liver's Dice against a model's
liver on that phase (e.g. a cross-validation's, which never saw the study), each moved tumor's
contrast against its parenchyma ring there, and the registration's time.

    .venv/bin/python tools/partner_check.py --manifest ../shared/data/manifest.json --pred runs/cv-p12
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from LiverLVTLib.core import io  # noqa: E402
from LiverLVTLib.core.manifest import load_manifest, partner_labelled_cases  # noqa: E402
from LiverLVTLib.evaluation.metrics import dice  # noqa: E402
from LiverLVTLib.training.partners import transfer_partner_labels, tumor_contrasts  # noqa: E402


def liver_dice(a, b) -> float:
    return dice(sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="../shared/data/manifest.json")
    parser.add_argument("--pred", required=True, help="folder of <case id>/labels.nii.gz predictions")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    root = Path(manifest["_root"])
    for entry in partner_labelled_cases(manifest):
        ct = io.read_ct(root / entry["ct"])
        partner_ct, partner_labels = io.read_ct(root / entry["ct_from"]), io.read_labels(root / entry["labels"])
        pred = sitk.Resample(sitk.ReadImage(str(Path(args.pred) / entry["id"] / "labels.nii.gz")), ct,
                             sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        print(f"{entry['id']} <- {entry['labels_from']}")
        for register in (False, True):
            start = time.time()
            moved = transfer_partner_labels(ct, partner_ct, partner_labels, register=register)
            took = time.time() - start
            if moved is None:
                print("  bodies do not overlap: not borrowed")
                break
            contrasts = ", ".join(f"{c:+.0f}" for c in tumor_contrasts(ct, moved)) or "none"
            print(f"  {'registered' if register else 'same frame':10s}  liver Dice vs model {liver_dice(moved, pred):.3f}  "
                  f"tumor ring contrast {contrasts} HU  ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
