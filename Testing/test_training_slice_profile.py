"""Synthetic tumors seen through the case's own slice thickness (stage key
``tumor_slice_profile``): the box profile spreads a thin sheet over the slab and keeps its sum, a
thick-slice case's inserted tumor loses its sharp z edges while its label and everything else in
the patch stay as they were, a thin-slice case is untouched, and the slice spacing is read from
the CT header along the patient's z."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from LiverLVTLib.training.augment import PatchSampler, slice_profile
from LiverLVTLib.training.dataset import encode_hu, slice_spacing_mm

SPACING = (1.25, 1.25, 1.25)


def test_the_box_profile_spreads_a_sheet_over_the_slab_and_keeps_its_sum():
    delta = torch.zeros(20, 4, 4)
    delta[10] = 40.0
    for slab in (3, 4):
        out = slice_profile(delta, slab)
        assert out.shape == delta.shape
        assert int((out[:, 0, 0] > 0).sum()) == slab
        torch.testing.assert_close(out.sum(0), delta.sum(0))
        assert out.max() == pytest.approx(40.0 / slab)
    assert slice_profile(delta, 1) is delta


def _sampler(slice_mm, profile: bool):
    n = 64
    case = {"id": "flat", "image": encode_hu(np.full((n, n, n), 100.0, np.float32)),
            "labels": np.ones((n, n, n), np.uint8), "annotated": np.ones(3, np.uint8),
            "spacing": np.array(SPACING, np.float32), "phase": "arterial", "slice_mm": slice_mm}
    synthesis = {"probability": 1.0, "max_per_patch": 1, "class_probs": {"small": 1.0},
                 "hyper_probability": {"arterial": 1.0}, "necrosis_probability": 0.0}
    return PatchSampler([case], patch_size=[32, 32, 32], window_hu=(-200, 300), seed=4, fg_prob=1.0,
                        synth_fraction=0.0, p_rotate=0.0, p_scale=0.0, p_flip=0.0, noise_std=0.0,
                        tumor_synthesis=synthesis, tumor_slice_profile=profile)


def _z_edge(x: torch.Tensor) -> float:
    return float((x[:, 0, 1:] - x[:, 0, :-1]).abs().max())


def _tumor_planes(x: torch.Tensor) -> int:
    """z-planes of the patches where the CT departs from the flat liver by more than 1 HU."""
    ct = x[:, 0]
    inside = ct > 0.1  # the case (the patch may reach past its edge, where the CT reads 0)
    flat = torch.stack([c[m].median() for c, m in zip(ct, inside)])[:, None, None, None]
    off = inside & ((ct - flat).abs() > 1 / 500)
    return int(off.any(dim=3).any(dim=2).sum())


def test_a_thick_slice_case_blurs_its_synthetic_tumor_in_z_only():
    sharp_x, sharp_t, _ = _sampler(5.0, False).sample(2)
    soft_x, soft_t, _ = _sampler(5.0, True).sample(2)
    assert sharp_t[:, 2].sum() > 0, "a synthetic tumor was drawn"
    torch.testing.assert_close(soft_t, sharp_t)  # the same tumor, the same label
    assert _z_edge(soft_x) < 0.8 * _z_edge(sharp_x), "its z edges are a 5 mm slab's"
    assert _tumor_planes(soft_x) >= _tumor_planes(sharp_x) + 2, "it reaches over more slices"
    tumor_free = (sharp_x[:, 0] - soft_x[:, 0]).abs().amax(dim=(1, 2)) == 0  # whole z-planes
    assert tumor_free.any(), "planes far from the tumor are untouched"
    thin_x, _, _ = _sampler(1.25, True).sample(2)
    torch.testing.assert_close(thin_x, sharp_x)  # a slab of one voxel: nothing to average
    unknown_x, _, _ = _sampler(None, True).sample(2)
    torch.testing.assert_close(unknown_x, sharp_x)


def test_the_slice_spacing_comes_from_the_header_along_the_patient_z(tmp_path):
    image = sitk.Image(8, 8, 4, sitk.sitkInt16)
    image.SetSpacing((0.8, 0.8, 5.0))
    sitk.WriteImage(image, str(tmp_path / "axial.nii.gz"))
    assert slice_spacing_mm(tmp_path, {"ct": "axial.nii.gz"}) == pytest.approx(5.0)
    image.SetDirection((1, 0, 0, 0, 0, 1, 0, 1, 0))  # index axis 2 runs along y, axis 1 along z
    image.SetSpacing((0.8, 3.0, 5.0))
    sitk.WriteImage(image, str(tmp_path / "turned.nii.gz"))
    assert slice_spacing_mm(tmp_path, {"ct": "turned.nii.gz"}) == pytest.approx(3.0)
    assert slice_spacing_mm(tmp_path, {"ct": "missing.nii.gz"}) is None
    assert slice_spacing_mm(tmp_path, None) is None
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    assert slice_spacing_mm(tmp_path, {"ct": "broken.nii.gz"}) is None
