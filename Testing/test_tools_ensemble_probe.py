"""tools/ensemble_cv.py (a probability ensemble of fold models) and tools/lesion_probe.py (the
Hessian blob detector a missed lesion is ranked by): real tiny networks, real Hessians."""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.core.labels import LIVER
from LiverLVTLib.segmentation import pipeline
from LiverLVTLib.synthetic.phantom import make_small_phantom


def test_an_ensemble_of_one_model_twice_is_that_model(tiny_model_dir, load_tool):
    ct = make_small_phantom(seed=2).ct
    single = sitk.GetArrayFromImage(pipeline.segment_ct(ct, model_dir=tiny_model_dir, device="cpu"))
    both = load_tool("ensemble_cv").ensemble_labels(ct, [tiny_model_dir, tiny_model_dir])
    assert both.GetSize() == ct.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(both), single)


def test_members_on_different_grids_are_refused(tiny_model_dir, tmp_path, load_tool):
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    card = json.loads((other / "model.json").read_text())
    card["stages"][1]["spacing_mm"] = [5.0, 5.0, 5.0]
    (other / "model.json").write_text(json.dumps(card))
    with pytest.raises(SystemExit, match="grids differ"):
        load_tool("ensemble_cv").ensemble_labels(make_small_phantom(seed=2).ct, [tiny_model_dir, other])


def _liver_with(sign: int):
    """A 1.5 mm liver (100 HU, 3 HU noise) holding a 12 mm sphere 30 HU off it (sign) at
    (20, 20, 20) and a 4 mm-wide tube 60 HU brighter along x at (20, 45, *)."""
    rng = np.random.default_rng(0)
    hu = 100 + rng.normal(0, 3, (40, 64, 64)).astype(np.float32)
    z, y, x = np.mgrid[:40, :64, :64] * 1.5
    hu[(z - 30) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 <= 6 ** 2] += 30 * sign
    hu[((z - 30) ** 2 + (y - 67.5) ** 2 <= 2 ** 2) & (x > 10) & (x < 86)] += 60
    pred = np.zeros(hu.shape, np.uint8)
    pred[2:-2, 2:-2, 2:-2] = LIVER
    return hu, pred


@pytest.mark.parametrize("sign", [1, -1])
def test_the_blob_detector_peaks_on_a_round_lesion_not_on_a_vessel(sign, load_tool):
    probe = load_tool("lesion_probe")
    hu, pred = _liver_with(sign)
    score, peaks = probe.blob_peaks(hu, pred, (1.5, 1.5, 1.5), sign)
    sphere = np.zeros(hu.shape, bool)
    sphere[16:25, 16:25, 16:25] = True
    tube = np.zeros(hu.shape, bool)
    tube[18:23, 43:48, 12:52] = True
    assert (peaks & sphere).any(), "the lesion's centre is a peak"
    assert score[sphere].max() > 3 * score[tube].max(), "a tube is not a blob"
    assert not (peaks & ~sphere & (score > 0.5 * score[sphere].max())).any()


def test_a_stage_output_gives_one_class_as_an_image_on_its_grid(tiny_model_dir):
    out = pipeline.predict_probabilities(make_small_phantom(seed=2).ct, model_dir=tiny_model_dir, device="cpu")
    tumor = out.channel_image("tumor")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(tumor), out.probs[2])
    assert tumor.GetSpacing() == out.grid.GetSpacing() and tumor.GetOrigin() == out.grid.GetOrigin()
    with pytest.raises(ValueError):
        out.channel_image("heart")
