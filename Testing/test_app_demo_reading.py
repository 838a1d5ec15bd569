"""The shipped model reads the demo phantom as its truth reads: every truth tumor and the cyst
found, and the stage the truth's own labels give (the first thing a new user sees)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.core.options import SegmentOptions


@pytest.fixture(scope="module")
def demo_reading():
    from LiverLVTLib.analysis.measure import analyze_case
    from LiverLVTLib.app.demo import make_demo_phantom
    from LiverLVTLib.segmentation.pipeline import segment_ct

    phantom = make_demo_phantom(0)
    labels = segment_ct(phantom.ct, SegmentOptions(device="cpu", tta=False))
    return (phantom, labels, analyze_case(phantom.ct, labels),
            analyze_case(phantom.ct, phantom.labels))


def _by_kind(measurements, kind):
    return [les for les in measurements["lesions"] if les["classification"] == kind]


def test_shipped_model_stages_the_demo_phantom_as_its_truth(demo_reading):
    _, _, model, truth = demo_reading
    assert model["staging"]["paper"]["stage"] == truth["staging"]["paper"]["stage"]
    assert model["staging"]["ajcc8"]["T"] == truth["staging"]["ajcc8"]["T"]


def test_shipped_model_finds_every_truth_lesion_and_one_cyst(demo_reading):
    phantom, labels, model, truth = demo_reading
    predicted = sitk.GetArrayViewFromImage(labels) == 3
    truth_lesions = sitk.GetArrayViewFromImage(phantom.labels) == 3
    import cc3d

    comps, n = cc3d.connected_components(truth_lesions.astype(np.uint8), connectivity=26, return_N=True)
    assert n == len(truth["lesions"])
    for k in range(1, n + 1):
        assert predicted[comps == k].mean() > 0.3, f"truth lesion {k} not found"
    assert len(_by_kind(model, "cyst")) == len(_by_kind(truth, "cyst")) == 1
