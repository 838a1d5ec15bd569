"""The ``liverlvt demo`` command and its engine (app.demo.run_demo): the CLI prints, the engine
returns values and prints nothing."""
from __future__ import annotations

import json

import pytest

from LiverLVTLib.cli.main import main
from LiverLVTLib.core import io
from LiverLVTLib.core.results import MARKER


@pytest.fixture
def small_phantom(monkeypatch):
    """The demo on the small phantom (fast), as ``make_phantom`` would build it."""
    from LiverLVTLib.synthetic import phantom

    small = phantom.make_small_phantom(seed=0)
    monkeypatch.setattr(phantom, "make_phantom", lambda seed=0: small)
    return small


def test_demo_command_writes_the_case_and_says_the_dice(tmp_path, tiny_model_dir, small_phantom, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", str(tiny_model_dir), "--device", "cpu",
                 "--no-tta", "--no-analysis"]) == 0
    printed = capsys.readouterr().out
    assert "phantom CT:" in printed and "liver Dice" in printed and "labels:" in printed
    assert {p.name for p in out.iterdir()} == {"ct.nii.gz", "truth_labels.nii.gz", "labels.nii.gz",
                                               MARKER}
    assert io.same_grid(io.read_labels(out / "labels.nii.gz"), small_phantom.ct)


def test_run_demo_returns_values_and_prints_nothing(tmp_path, small_phantom, monkeypatch, capsys):
    from LiverLVTLib.app.demo import run_demo
    from LiverLVTLib.core.options import AnalysisOptions, SegmentOptions
    from LiverLVTLib.segmentation import pipeline

    seen = {}

    def perfect(ct, options=None, progress=None, **changes):  # the phantom's truth as "prediction"
        seen["options"] = options
        return small_phantom.labels

    monkeypatch.setattr(pipeline, "segment_ct", perfect)
    done = run_demo(tmp_path, segment=SegmentOptions(device="cpu"),
                    analysis=AnalysisOptions(n="N0", m="M0"), models=False, report=False)
    assert capsys.readouterr().out == ""
    assert seen["options"] == SegmentOptions(device="cpu")
    assert done["liver_dice"] == pytest.approx(1.0)
    assert done["measurements"]["settings"]["n"] == "N0"
    saved = json.loads((tmp_path / "measurements.json").read_text())
    assert saved["staging"] == done["measurements"]["staging"]
    assert set(done["paths"]) == {"ct", "truth", "labels", "measurements", "lesions_csv"}
