"""tools/bar_check.py's CT-only line: a CT-only phase of a tumor study passes only when a predicted
tumor lies near the tumor labelled in its partner phase, not for any find elsewhere."""
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def _labels(path: Path, tumor_at=None) -> Path:
    """A 40^3 label map at 2 mm: liver block, one 6^3-voxel tumor at ``tumor_at`` (z, y, x)."""
    a = np.zeros((40, 40, 40), np.uint8)
    a[5:35, 5:35, 5:35] = 1
    if tumor_at is not None:
        z, y, x = tumor_at
        a[z:z + 6, y:y + 6, x:x + 6] = 3
    image = sitk.GetImageFromArray(a)
    image.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(image, str(path))
    return path


def _result(tmp_path: Path, predicted_tumor_at) -> dict:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    _labels(data / "ap-labels.nii.gz", tumor_at=(10, 10, 10))
    (data / "manifest.json").write_text(json.dumps({"cases": [
        {"id": "s-ap", "ct": "ap.nii.gz", "labels": "ap-labels.nii.gz",
         "annotated": ["liver", "tumor"], "phase": "arterial"},
        {"id": "s-eqp", "ct": "eqp.nii.gz", "phase": "equilibrium", "pair_of": "s-ap"}]}))
    for name in ("ap.nii.gz", "eqp.nii.gz"):  # load_manifest only needs the CT paths named
        (data / name).write_bytes(b"")
    prediction = _labels(tmp_path / "eqp-pred.nii.gz", tumor_at=predicted_tumor_at)
    return {"manifest": str(data / "manifest.json"), "cases": {},
            "case_info": {"s-eqp": {"phase": "equilibrium", "scored": False, "prediction": str(prediction)}}}


def test_a_tumor_near_the_partners_tumor_counts(tmp_path, load_tool):
    rows = load_tool("bar_check").ct_only_tumors(_result(tmp_path, predicted_tumor_at=(12, 11, 10)))
    assert rows == [("s-eqp", 1, 1)]


def test_a_tumor_elsewhere_is_predicted_but_not_found(tmp_path, load_tool):
    rows = load_tool("bar_check").ct_only_tumors(_result(tmp_path, predicted_tumor_at=(26, 26, 26)))
    assert rows == [("s-eqp", 1, 0)], "30 mm away from the partner's tumor is not a find"


def test_no_tumor_predicted_is_no_find(tmp_path, load_tool):
    rows = load_tool("bar_check").ct_only_tumors(_result(tmp_path, predicted_tumor_at=None))
    assert rows == [("s-eqp", 0, 0)]
