"""Vesselness prior: a synthetic bright tube of known radius lights up, a bright sphere (an
enhancing tumor) does not; a 'tumor' that is a vein goes back to the vessel tree."""
from __future__ import annotations

import numpy as np

from LiverLVTLib.segmentation.vesselness import VesselPrior, apply_vessel_prior, vesselness

SPACING = (1.25, 1.25, 1.25)


def scene(n=64):
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32)
    liver = ((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2) < (0.45 * n) ** 2
    tube = liver & (((y - n / 2 + 10) ** 2 + (x - n / 2) ** 2) < 2.4 ** 2)       # 6 mm vein along z
    sphere = ((z - n / 2) ** 2 + (y - n / 2 - 12) ** 2 + (x - n / 2) ** 2) < 8 ** 2  # 20 mm HCC
    hu = np.where(liver, 100.0, -100.0) + rng.normal(0, 6, liver.shape)
    hu[tube] = 200.0
    hu[sphere] = 150.0  # arterial-phase hyper-enhancement, +50 HU (the shared HCCs: +23..+29)
    return hu.astype(np.float32), liver, tube, sphere


def test_tube_lights_up_and_a_sphere_does_not():
    hu, liver, tube, sphere = scene()
    response = vesselness(hu, liver, SPACING)
    assert response[tube].mean() > 3 * max(response[sphere].mean(), 1e-6)
    assert np.median(response[tube]) > np.percentile(response[liver & ~tube & ~sphere], 99)


def test_vein_called_tumor_goes_back_to_the_vessel_tree_but_the_blob_stays_tumor():
    hu, liver, tube, sphere = scene()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tube] = 3      # the network called the vein a tumor
    labels[sphere] = 3    # and the enhancing blob a tumor
    out = apply_vessel_prior(labels, hu, SPACING, VesselPrior(inner_mm=0.0, tumor_tube_score=0.07))
    assert (out[tube] == 2).mean() > 0.8, "the vein is vessel again"
    assert (out[sphere] == 3).mean() > 0.95, "a round enhancing tumor is not a vessel"
    assert np.all(out[~liver] == 0)


def test_vessels_are_decided_on_the_ct_grid():
    """The model grid (1.25 mm) finds the tube; the vessel voxels are then set on the CT's own,
    finer grid (interpolated tube score, native HU), so a 5 mm vein is not a staircase of model
    voxels."""
    import SimpleITK as sitk

    from LiverLVTLib.core.preprocess import labels_to_grid, to_model_grid
    from LiverLVTLib.segmentation.pipeline import _vessel_prior_on_ct_grid, _vessel_prior_on_model_grid

    n, spacing = 120, (0.625, 0.625, 1.25)
    z, y, x = np.mgrid[:60, :n, :n].astype(np.float32)
    zz, yy, xx = z * spacing[2], y * spacing[1], x * spacing[0]
    liver = ((zz - 37) ** 2 + (yy - 37) ** 2 + (xx - 37) ** 2) < 34 ** 2
    tube = liver & (((yy - 30) ** 2 + (xx - 37) ** 2) < 2.5 ** 2)
    hu = np.where(liver, 100.0, -100.0) + np.random.default_rng(0).normal(0, 5, liver.shape)
    hu[tube] = 200.0
    ct = sitk.GetImageFromArray(hu.astype(np.float32))
    ct.SetSpacing(spacing)
    grid = to_model_grid(ct, (1.25, 1.25, 1.25))
    ref = sitk.GetImageFromArray(liver.astype(np.uint8))
    ref.CopyInformation(ct)
    model_labels = sitk.GetArrayFromImage(labels_to_grid(ref, grid))
    prior = VesselPrior(inner_mm=2.0)
    labels, fields = _vessel_prior_on_model_grid(model_labels, grid, prior)
    on_model = sitk.GetImageFromArray(labels)
    on_model.CopyInformation(grid)
    out = sitk.GetArrayFromImage(_vessel_prior_on_ct_grid(labels_to_grid(on_model, ct), ct, fields, prior))
    inside = tube & (np.abs(zz - 37) < 25)  # away from the liver's poles (the inner margin)
    found = out == 2
    dice = 2 * (found & inside).sum() / (found.sum() + inside.sum())
    assert dice > 0.7, dice
    assert not (found & ~liver).any()


def test_the_vein_veto_is_off_by_default():
    hu, liver, tube, sphere = scene()
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tube] = 3
    out = apply_vessel_prior(labels, hu, SPACING, VesselPrior(inner_mm=0.0))
    assert np.all(out[tube] == 3), "without tumor_tube_score no tumor is given to the vessels"
