"""Cross-validation: no case is scored by a model that trained on it (``evaluate --folds``), and a
single model's training cases are flagged when it is evaluated on them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from LiverLVTLib.cli.main import main
from LiverLVTLib.core import io
from LiverLVTLib.core.errors import InputError
from LiverLVTLib.evaluation.crossval import assign_folds, trained_cases
from LiverLVTLib.segmentation.model import write_card


def entry(cid, pair_of=None):
    return {"id": cid, **({"pair_of": pair_of} if pair_of else {})}


def test_trained_cases_reads_every_stage():
    card = {"training": {"stages": {"coarse": {"cases": ["a", "b"]}, "fine": {"cases": ["c"]}}}}
    assert trained_cases(card) == {"a", "b", "c"}
    assert trained_cases({}) == set()


def test_each_case_goes_to_a_fold_that_never_saw_it():
    entries = [entry("a"), entry("b"), entry("c")]
    folds = {"f1": {"a"}, "f2": {"b", "c"}}
    assert assign_folds(entries, folds) == {"a": "f2", "b": "f1", "c": "f1"}


def test_phase_pair_is_segmented_by_one_fold_that_saw_neither_phase():
    # b-ct is CT only (never trained by anyone) but its partner b was trained by f1:
    # it must go to f2 with b, not to the first fold f1
    entries = [entry("a"), entry("b"), entry("b-ct", pair_of="b")]
    folds = {"f1": {"b"}, "f2": {"a"}}
    assert assign_folds(entries, folds) == {"a": "f1", "b": "f2", "b-ct": "f2"}


def test_a_case_every_fold_saw_is_an_error_naming_it():
    with pytest.raises(InputError, match=r"\['a'\]"):
        assign_folds([entry("a"), entry("b")], {"f1": {"a"}, "f2": {"a", "c"}})


def fold_copy(src: Path, dst: Path, cases) -> Path:
    shutil.copytree(src, dst)
    card = json.loads((dst / "model.json").read_text())
    card["training"] = {"stages": {s["name"]: {"cases": list(cases)} for s in card["stages"]}}
    write_card(dst, card)
    return dst


@pytest.fixture
def phantom_manifest(tmp_path):
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    entries = []
    for index, cid in enumerate(("ph1", "ph2", "ph2-ap")):
        ph = make_small_phantom(seed=index + 1)
        case = tmp_path / "data" / "cases" / cid
        case.mkdir(parents=True)
        io.write_image(ph.ct, case / "ct.nii.gz")
        e = {"id": cid, "ct": f"cases/{cid}/ct.nii.gz", "phase": "portal-venous"}
        if cid == "ph2-ap":
            e.update(pair_of="ph2", phase="arterial")
        else:
            io.write_image(ph.labels, case / "labels.nii.gz")
            e.update(labels=f"cases/{cid}/labels.nii.gz", annotated=["liver", "tumor"])
        entries.append(e)
    manifest = tmp_path / "data" / "manifest.json"
    manifest.write_text(json.dumps({"cases": entries}))
    return manifest


def test_evaluate_folds_scores_every_case_held_out(tmp_path, tiny_model_dir, phantom_manifest):
    fold_a = fold_copy(tiny_model_dir, tmp_path / "fold-a", ["ph1"])
    fold_b = fold_copy(tiny_model_dir, tmp_path / "fold-b", ["ph2"])
    out = tmp_path / "cv"
    assert main(["evaluate", "--manifest", str(phantom_manifest), "--folds", str(fold_a),
                 str(fold_b), "--device", "cpu", "--no-tta", "--out", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["folds"] == {"fold-a": ["ph2", "ph2-ap"], "fold-b": ["ph1"]}
    assert {c: i["model"] for c, i in result["case_info"].items()} == \
        {"ph1": "fold-b", "ph2": "fold-a", "ph2-ap": "fold-a"}
    assert not any(i["seen_in_training"] for i in result["case_info"].values())
    assert set(result["cases"]) == {"ph1", "ph2"}
    assert [(p["a"], p["b"]) for p in result["phase_pairs"]] == [("ph2", "ph2-ap")]
    assert "cross-validation of fold-a, fold-b" in (out / "metrics.md").read_text()


def test_evaluate_flags_training_cases_of_a_single_model(tmp_path, tiny_model_dir, phantom_manifest):
    fold_a = fold_copy(tiny_model_dir, tmp_path / "fold-a", ["ph1"])
    out = tmp_path / "ev"
    assert main(["evaluate", "--manifest", str(phantom_manifest), "--model", str(fold_a),
                 "--cases", "ph1", "ph2", "--device", "cpu", "--no-tta", "--out", str(out)]) == 0
    info = json.loads((out / "metrics.json").read_text())["case_info"]
    assert info["ph1"]["seen_in_training"] is True and info["ph2"]["seen_in_training"] is False
    assert "**Not held out:** ph1" in (out / "metrics.md").read_text()


def test_evaluate_folds_refuses_a_case_no_fold_held_out(tmp_path, tiny_model_dir, phantom_manifest,
                                                         capsys):
    fold_a = fold_copy(tiny_model_dir, tmp_path / "fold-a", ["ph1", "ph2"])
    assert main(["evaluate", "--manifest", str(phantom_manifest), "--folds", str(fold_a),
                 "--device", "cpu", "--out", str(tmp_path / "cv")]) == 2
    err = capsys.readouterr().err
    assert "trained on by every fold" in err and not (tmp_path / "cv" / "metrics.json").exists()
