"""The JSON Schemas in Resources/Schemas are the contracts of measurements.json and model.json:
the analysis output and the shipped card satisfy them, and a damaged document fails them."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from LiverLVTLib.core.schemas import schema_errors

REPO = Path(__file__).resolve().parent.parent
CARD = REPO / "Resources" / "Models" / "lvt-unet" / "model.json"


@pytest.fixture(scope="module")
def measurements():
    from LiverLVTLib.analysis.measure import analyze_case
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=0)
    return json.loads(json.dumps(analyze_case(ph.ct, ph.labels)))


def test_analysis_output_satisfies_the_measurements_schema(measurements):
    assert measurements["lesions"], "the small phantom has lesions"
    assert schema_errors(measurements, "measurements") == []
    assert measurements["staging"]["paper"]["rule_note"]  # the report reads it by name


def test_a_damaged_record_fails_with_the_field_named(measurements):
    bad = copy.deepcopy(measurements)
    bad["lesions"][0]["classification"] = "maybe"
    del bad["staging"]["ajcc8"]["T"]
    errors = schema_errors(bad, "measurements")
    assert any(e.startswith("lesions.0.classification") for e in errors), errors
    assert any(e.startswith("staging.ajcc8") and "'T'" in e for e in errors), errors


def test_shipped_model_card_satisfies_the_model_schema():
    card = json.loads(CARD.read_text(encoding="utf-8"))
    assert schema_errors(card, "model") == []
    bad = copy.deepcopy(card)
    bad["stages"][0]["spacing_mm"] = [0, 0, 0]
    bad["stages"][1]["patch_size"] = [-96, 96, 96]
    errors = schema_errors(bad, "model")
    assert any(e.startswith("stages.0.spacing_mm.0") for e in errors), errors
    assert any(e.startswith("stages.1.patch_size.0") for e in errors), errors
    assert schema_errors([card], "model")  # a card that is a JSON list


def test_the_tumor_extent_block_is_checked_field_by_field():
    card = json.loads(CARD.read_text(encoding="utf-8"))
    card["postprocess"]["tumor_extent"] = {"min_ml": 5, "reach_mm": 5, "max_growth": 1.0}
    assert schema_errors(card, "model") == []
    card["postprocess"]["tumor_extent"] = True
    assert schema_errors(card, "model") == []
    card["postprocess"]["tumor_extent"] = {"reach_mm": -1, "grow_everything": True}
    errors = schema_errors(card, "model")
    assert any(e.startswith("postprocess.tumor_extent") for e in errors), errors
