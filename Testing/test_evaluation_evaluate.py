"""``liverlvt evaluate``: single-pair mode and manifest mode on small synthetic files
(hand-computed expectations), annotated-class filtering, phase pairs and clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.cli.main import main
from LiverLVTLib.core import io

SPACING_XYZ = (1.5, 1.5, 2.0)  # voxel 4.5 uL
VOXEL_ML = 1.5 * 1.5 * 2.0 / 1000


def image(array: np.ndarray, spacing=SPACING_XYZ) -> sitk.Image:
    img = sitk.GetImageFromArray(array.astype(np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin((-10.0, 20.0, -30.0))
    return img


def reference_array(vessel=True, tumor=True) -> np.ndarray:
    """20 x 24 x 24 (z, y, x): liver box 10x12x12 = 1440 voxels holding a vessel rod
    (10 voxels) and a 2x2x2 tumor (8 voxels)."""
    a = np.zeros((20, 24, 24), np.uint8)
    a[5:15, 6:18, 6:18] = 1
    if vessel:
        a[5:15, 8, 8] = 2
    if tumor:
        a[9:11, 12:14, 12:14] = 3
    return a


def predicted_array() -> np.ndarray:
    """Liver box shifted by 2 voxels along x (overlap 10x12x10 = 1200 of 1440), same vessel,
    the tumor found, plus a false 2x2x2 tumor elsewhere in the liver."""
    a = np.zeros((20, 24, 24), np.uint8)
    a[5:15, 6:18, 8:20] = 1
    a[5:15, 8, 8] = 2
    a[9:11, 12:14, 12:14] = 3
    a[6:8, 15:17, 15:17] = 3
    return a


def write(tmp: Path, name: str, array: np.ndarray, spacing=SPACING_XYZ) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return io.write_image(image(array, spacing), tmp / name)


# ----------------------------------------------------------------------------- single pair
def test_single_pair_hand_computed(tmp_path, capsys):
    pred = write(tmp_path, "pred.nii.gz", predicted_array())
    ref = write(tmp_path, "ref.nii.gz", reference_array())
    out = tmp_path / "out"
    assert main(["evaluate", str(pred), str(ref), "--out", str(out)]) == 0
    assert "liver  dice 0.833" in capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text())
    scores = result["cases"]["pair"]
    assert set(scores) == {"liver", "vessel", "tumor"}
    assert scores["liver"]["dice"] == pytest.approx(2 * 1200 / 2880, abs=1e-6)
    assert scores["liver"]["voe"] == pytest.approx(1 - 1200 / 1680, abs=1e-6)
    # shift of 2 voxels along x (1.5 mm): the two side faces are 3 mm apart
    assert scores["liver"]["hd95_mm"] == pytest.approx(3.0, abs=1e-4)
    assert scores["liver"]["nsd"] == pytest.approx(1.0)  # 3 mm is within the 7 mm liver tolerance
    assert scores["vessel"]["dice"] == pytest.approx(1.0)
    tumor = scores["tumor"]
    assert tumor["dice"] == pytest.approx(2 * 8 / 24, abs=1e-6)
    assert tumor["nsd"] < 1.0  # the false tumor lies > 3 mm from the true one
    assert tumor["lesion_sensitivity"] == 1.0 and tumor["lesion_precision"] == 0.5
    assert tumor["fp_volume_ml"] == pytest.approx(8 * VOXEL_ML, abs=1e-6)
    assert result["mean"]["liver"]["dice"] == pytest.approx(scores["liver"]["dice"], abs=1e-6)
    md = (out / "metrics.md").read_text()
    assert "| pair |" in md and "mean ± sd" in md


def test_single_pair_identical_maps_are_perfect(tmp_path):
    ref = write(tmp_path, "ref.nii.gz", reference_array())
    out = tmp_path / "out"
    assert main(["evaluate", str(ref), str(ref), "--out", str(out), "--classes", "liver", "tumor"]) == 0
    scores = json.loads((out / "metrics.json").read_text())["cases"]["pair"]
    assert set(scores) == {"liver", "tumor"}
    for record in scores.values():
        assert record["dice"] == 1.0 and record["hd95_mm"] == 0.0 and record["nsd"] == 1.0


def test_single_pair_errors_are_one_line(tmp_path, capsys):
    ref = write(tmp_path, "ref.nii.gz", reference_array())
    other = write(tmp_path, "other.nii.gz", reference_array(), spacing=(1.0, 1.0, 2.0))
    assert main(["evaluate", str(other), str(ref)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("liverlvt: error:") and "grid" in err and "\n" not in err
    assert main(["evaluate", str(ref)]) == 2
    assert "PRED and REF" in capsys.readouterr().err
    bad = write(tmp_path, "bad.nii.gz", np.full((20, 24, 24), 7, np.uint8))
    assert main(["evaluate", str(bad), str(ref)]) == 2
    assert "outside 0-3" in capsys.readouterr().err


# ----------------------------------------------------------------------------- manifest
def make_manifest(tmp_path: Path) -> tuple[Path, Path]:
    """Two labelled cases and a CT-only partner, predictions in a --pred-dir.

    case-a (arterial, annotates liver+tumor; its reference carries vessel labels that must NOT
    be scored), case-b (portal-venous, fully annotated, tumor annotated but absent),
    case-a-eqp (CT only, pair_of case-a)."""
    data, preds = tmp_path / "data", tmp_path / "preds"
    ref_a, pred_a = reference_array(), predicted_array()
    ref_b = reference_array(tumor=False)
    pred_b = ref_b.copy()
    pred_b[10:12, 14:16, 14:16] = 3  # a false tumor: 8 voxels
    pred_c = reference_array()
    pred_c[5:15, 6:18, 18:20] = 1  # liver 1440 + 240 voxels
    entries = []
    for cid, ref, pred, annotated, phase, extra in (
            ("case-a", ref_a, pred_a, ["liver", "tumor"], "arterial", {}),
            ("case-b", ref_b, pred_b, ["liver", "vessel", "tumor"], "portal-venous", {}),
            ("case-a-eqp", None, pred_c, [], "equilibrium", {"pair_of": "case-a"})):
        write(preds / cid, "labels.nii.gz", pred)
        entry = {"id": cid, "ct": f"cases/{cid}/ct.nii.gz", "annotated": annotated, "phase": phase,
                 "labels": None if ref is None else f"cases/{cid}/labels.nii.gz", **extra}
        if ref is not None:
            write(data / "cases" / cid, "labels.nii.gz", ref)
        entries.append(entry)
    manifest = data / "manifest.json"
    manifest.write_text(json.dumps({"cases": entries}))
    return manifest, preds


def test_manifest_mode_scores_annotated_classes_and_pairs(tmp_path):
    manifest, preds = make_manifest(tmp_path)
    out = tmp_path / "eval"
    assert main(["evaluate", "--manifest", str(manifest), "--pred-dir", str(preds),
                 "--out", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert {"cases", "mean", "phase_pairs"} <= set(result)
    cases = result["cases"]
    assert set(cases) == {"case-a", "case-b"}  # the CT-only partner is not scored
    assert set(cases["case-a"]) == {"liver", "tumor"}  # vessel not annotated there
    assert set(cases["case-b"]) == {"liver", "vessel", "tumor"}
    for key in ("dice", "hd95_mm", "nsd", "voe", "accuracy", "sensitivity", "precision"):
        assert key in cases["case-a"]["liver"]
    assert {"lesion_sensitivity", "lesion_precision"} <= set(cases["case-a"]["tumor"])
    assert cases["case-a"]["liver"]["dice"] == pytest.approx(2 * 1200 / 2880, abs=1e-6)
    # annotated absence: no Dice, a false positive volume, lesion precision 0
    tumor_b = cases["case-b"]["tumor"]
    assert tumor_b["reference_empty"] and tumor_b["dice"] is None
    assert tumor_b["fp_volume_ml"] == pytest.approx(8 * VOXEL_ML, abs=1e-6)
    assert tumor_b["lesion_precision"] == 0.0
    # mean over cases: liver Dice of both cases, vessel only from case-b
    liver_b = cases["case-b"]["liver"]["dice"]
    assert result["mean"]["liver"]["dice"] == pytest.approx((2 * 1200 / 2880 + liver_b) / 2, abs=1e-6)
    assert result["n"]["vessel"]["dice"] == 1 and result["n"]["tumor"]["dice"] == 1
    assert result["mean"]["tumor"]["lesion_precision"] == pytest.approx((0.5 + 0.0) / 2)
    # phase pair: predicted liver volumes 1440 (case-a, liver box shifted) vs 1680 voxels
    (pair,) = result["phase_pairs"]
    assert (pair["a"], pair["b"]) == ("case-a", "case-a-eqp")
    assert pair["liver_volume_a_ml"] == pytest.approx(1440 * VOXEL_ML, abs=1e-6)
    assert pair["liver_volume_diff_percent"] == pytest.approx(100 * 240 / 1560, abs=1e-4)
    assert set(result["by_phase"]) == {"arterial", "portal-venous"}
    md = (out / "metrics.md").read_text()
    assert "mean ± sd" in md and "Tumor by contrast phase" in md and "case-a-eqp" in md
    assert "| case-a | arterial |" in md


def test_manifest_mode_case_selection_and_errors(tmp_path, capsys):
    manifest, preds = make_manifest(tmp_path)
    out = tmp_path / "eval"
    assert main(["evaluate", "--manifest", str(manifest), "--pred-dir", str(preds),
                 "--out", str(out), "--cases", "case-b"]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["cases"]) == {"case-b"} and result["phase_pairs"] == []
    assert main(["evaluate", "--manifest", str(manifest), "--pred-dir", str(preds),
                 "--out", str(out), "--cases", "nope"]) == 2
    assert "not in the manifest" in capsys.readouterr().err
    (preds / "case-b" / "labels.nii.gz").unlink()
    assert main(["evaluate", "--manifest", str(manifest), "--pred-dir", str(preds),
                 "--out", str(out), "--cases", "case-b"]) == 2
    assert "no prediction for case 'case-b'" in capsys.readouterr().err
    assert main(["evaluate", "--manifest", str(tmp_path / "missing.json")]) == 2


def test_manifest_mode_segments_and_saves_predictions(tmp_path, tiny_model_dir):
    """Without --pred-dir every case is segmented (tiny random model: plumbing only) and its
    prediction saved on the CT grid as OUT/<id>/labels.nii.gz."""
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=1)
    case = tmp_path / "data" / "cases" / "ph"
    case.mkdir(parents=True)
    io.write_image(ph.ct, case / "ct.nii.gz")
    io.write_image(ph.labels, case / "labels.nii.gz")
    manifest = tmp_path / "data" / "manifest.json"
    manifest.write_text(json.dumps({"cases": [
        {"id": "ph", "ct": "cases/ph/ct.nii.gz", "labels": "cases/ph/labels.nii.gz",
         "annotated": ["liver"], "phase": "portal-venous"}]}))
    out = tmp_path / "eval"
    assert main(["evaluate", "--manifest", str(manifest), "--model", str(tiny_model_dir),
                 "--device", "cpu", "--no-tta", "--out", str(out)]) == 0
    saved = io.read_labels(out / "ph" / "labels.nii.gz")
    assert io.same_grid(saved, ph.ct)
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["cases"]["ph"]) == {"liver"}
    assert result["model"] == "tiny-random-test-model"
    assert result["case_info"]["ph"]["seconds"] is not None
