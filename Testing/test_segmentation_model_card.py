"""The shipped model's card keeps its promises: the weights load and match their sha256; the check
case (ircadb-1.1 of ../shared/data) is either held out (a fold model: never trained on) or, for a
release model trained on every labelled case, the card says so and still states the case's
held-out Dice from its recipe's cross-validation; and segmenting the case reaches the Dice the card
states for this model (within 0.02; skipped without the data)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import case_entry

from LiverLVTLib.core import io
from LiverLVTLib.core.labels import CHANNELS
from LiverLVTLib.evaluation.crossval import trained_cases
from LiverLVTLib.evaluation.metrics import class_mask, dice
from LiverLVTLib.segmentation.model import default_model_dir, load_card, sha256_file

CHECK_CASE = "ircadb-1.1"
TOLERANCE = 0.02


def _find_case(node: Any, case_id: str) -> Optional[Dict]:
    """The record of ``case_id`` anywhere in the card's ``metrics`` (a dict keyed by case id,
    e.g. {"cases": {"ircadb-1.1": {...}}}, or a list of records with "id"/"case")."""
    if isinstance(node, dict):
        if isinstance(node.get(case_id), dict):
            return node[case_id]
        if node.get("id") == case_id or node.get("case") == case_id:
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_case(child, case_id)
        if found is not None:
            return found
    return None


def stated_dice(metrics: Dict, case_id: str) -> Dict[str, float]:
    """{class: Dice} the card states for ``case_id`` ({"liver": {"dice": x}} or {"liver_dice": x})."""
    record = _find_case(metrics, case_id) or {}
    out = {}
    for name in CHANNELS:
        value = record.get(name, {}).get("dice") if isinstance(record.get(name), dict) \
            else record.get(f"{name}_dice")
        if isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def test_stated_dice_lookup():
    card_metrics = {"held_out": ["a"], "cases": {"ircadb-1.1": {"liver": {"dice": 0.95},
                                                                 "tumor": {"dice": None}}}}
    assert stated_dice(card_metrics, "ircadb-1.1") == {"liver": 0.95}
    assert stated_dice([{"id": "ircadb-1.1", "liver_dice": 0.9, "vessel_dice": 0.5}],
                       "ircadb-1.1") == {"liver": 0.9, "vessel": 0.5}
    assert stated_dice({"cases": {}}, "ircadb-1.1") == {}


@pytest.fixture(scope="module")
def card():
    return load_card(default_model_dir())


def test_shipped_weights_load_and_match_their_sha256(card):
    assert card.folder == default_model_dir() and card.stages
    for stage in card.stages:
        assert sha256_file(stage.weights) == stage.sha256, stage.name
        network = stage.load_network("cpu")  # re-checks the sha256, loads weights_only
        assert not network.training
        assert sum(p.numel() for p in network.parameters()) > 0


def test_card_states_an_honest_dice_for_the_check_case(card):
    metrics = card.card.get("metrics")
    assert metrics, "model.json has no 'metrics'"
    stated = stated_dice(metrics.get("cases") or {}, CHECK_CASE)
    assert "liver" in stated, f"model.json 'metrics.cases' states no liver Dice for {CHECK_CASE}"
    assert all(0.0 <= v <= 1.0 for v in stated.values())
    if CHECK_CASE in trained_cases(card.card):
        # a release model: its stated Dice is a fit, so the card must say so and carry the
        # recipe's cross-validation, where a fold that never saw the case scores it
        assert metrics.get("trained_on_every_labelled_case") is True
        assert CHECK_CASE not in metrics.get("held_out_cases", [])
        held_out = stated_dice((metrics.get("cross_validation") or {}).get("cases") or {}, CHECK_CASE)
        assert "liver" in held_out, f"no cross-validated Dice for {CHECK_CASE} in a release card"
    else:
        assert CHECK_CASE in metrics.get("held_out_cases", []), f"{CHECK_CASE} neither trained nor held out"


@pytest.mark.realdata
@pytest.mark.slow
def test_held_out_case_reaches_the_stated_dice(card, shared_data, manifest):
    stated = stated_dice((card.card.get("metrics") or {}).get("cases") or {}, CHECK_CASE)
    if "liver" not in stated:
        pytest.fail(f"model.json 'metrics' states no Dice for {CHECK_CASE}")
    from LiverLVTLib.segmentation.pipeline import segment_ct

    entry = case_entry(manifest, CHECK_CASE)
    ct = io.read_ct(shared_data / entry["ct"])
    reference = io.read_labels(shared_data / entry["labels"], ct)
    labels = segment_ct(ct, device="cpu")  # the card's own inference settings
    assert io.same_grid(labels, ct)
    pred, ref = sitk.GetArrayViewFromImage(labels), sitk.GetArrayViewFromImage(reference)
    reached = {name: dice(class_mask(pred, name), class_mask(ref, name))
               for name in stated if name in entry["annotated"]}
    for name, value in stated.items():
        if name in reached:
            assert reached[name] >= value - TOLERANCE, \
                f"{name} Dice {reached[name]:.3f} < stated {value:.3f} - {TOLERANCE}"
    assert np.isfinite(list(reached.values())).all()
