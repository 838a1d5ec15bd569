"""Analysis of the real, fully labelled 3D-IRCADb cases (skipped without ../shared/data)."""
import time

import pytest
from conftest import case_entry

from LiverLVTLib.analysis.measure import analyze_case
from LiverLVTLib.core.io import read_ct, read_labels

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _load(shared_data, manifest, case_id):
    entry = case_entry(manifest, case_id)
    ct = read_ct(shared_data / entry["ct"])
    return ct, read_labels(shared_data / entry["labels"], ct)


def test_ircadb_1_1_plausible(shared_data, manifest):
    ct, labels = _load(shared_data, manifest, "ircadb-1.1")
    start = time.perf_counter()
    res = analyze_case(ct, labels)
    assert time.perf_counter() - start < 120
    assert 1000 < res["liver"]["volume_ml"] < 2500
    assert 5 < res["vessels"]["volume_ml"] < 200
    lesions = res["lesions"]
    assert 5 <= len(lesions) <= 10  # "8 tumors (84 mL largest)"; touching ones merge (26-conn.)
    assert lesions[0]["volume_ml"] == pytest.approx(84, rel=0.1)
    vols = [les["volume_ml"] for les in lesions]
    assert vols == sorted(vols, reverse=True)
    for les in lesions:
        assert les["short_axis_mm"] <= les["longest_axial_mm"] <= les["max_3d_mm"] + 1e-6
        assert -100 < les["mean_hu"] < 250
        vc = les["vessel_contact"]
        if vc["in_contact"]:
            assert 0.5 < vc["max_vessel_diameter_mm"] < 30
    # an 84 mL lesion is > 50 mm across: the paper stage is at least 3
    assert lesions[0]["max_3d_mm"] > 50
    assert res["staging"]["paper"]["stage"] >= 3
    assert 0 < res["tumor_burden_percent"] < 20


def test_ircadb_1_7_no_tumor(shared_data, manifest):
    ct, labels = _load(shared_data, manifest, "ircadb-1.7")
    res = analyze_case(ct, labels, n="N0", m="M0")
    assert res["lesions"] == [] and res["tumor_burden_percent"] == 0
    assert res["staging"]["paper"]["stage"] == 0 and res["staging"]["ajcc8"]["T"] == "T0"
    assert 1000 < res["liver"]["volume_ml"] < 2500
