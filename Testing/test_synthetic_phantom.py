"""The built-in phantom: geometry, realism of HU values, exact truth, orientation handling."""
import time

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.core.io import same_grid
from LiverLVTLib.synthetic.phantom import (
    Lesion,
    Vessel,
    beside_vessel,
    default_vessels,
    make_phantom,
    make_small_phantom,
)


@pytest.fixture(scope="module")
def default():
    start = time.perf_counter()
    ph = make_phantom(seed=0)
    return ph, time.perf_counter() - start


def test_default_grid_and_types(default):
    ph, seconds = default
    assert seconds < 10.0  # < 3 s on an idle 2-core machine; generous for shared CI
    assert ph.ct.GetPixelID() == sitk.sitkFloat32 and ph.labels.GetPixelID() == sitk.sitkUInt8
    assert same_grid(ph.ct, ph.labels)
    assert ph.ct.GetSpacing() == pytest.approx((0.8, 0.8, 2.5))
    assert not np.allclose(np.reshape(ph.ct.GetDirection(), (3, 3)), np.eye(3))
    extent = np.abs(np.reshape(ph.ct.GetDirection(), (3, 3))) @ (
        np.multiply(ph.ct.GetSize(), ph.ct.GetSpacing()))
    assert extent == pytest.approx((360, 300, 200), abs=3)
    assert set(np.unique(sitk.GetArrayViewFromImage(ph.labels))) == {0, 1, 2, 3}


def test_default_anatomy_is_ct_like(default):
    ph, _ = default
    hu = sitk.GetArrayViewFromImage(ph.ct)
    lab = sitk.GetArrayViewFromImage(ph.labels)
    from scipy import ndimage

    core = ndimage.binary_erosion(lab == 1, iterations=3)
    assert np.median(hu[core]) == pytest.approx(100, abs=5)
    assert 8 < hu[core].std() < 20  # noise + parenchymal texture
    assert np.median(hu[lab == 2]) > 140  # enhancing portal-venous vessels
    assert hu.min() <= -990 and np.percentile(hu, 99.9) > 400  # air outside, bone present
    body_fat = (hu > -130) & (hu < -70)
    assert body_fat.mean() > 0.05
    assert 1300 < ph.truth["liver"]["volume_ml"] < 1800
    kinds = [t["classification"] for t in ph.truth["lesions"]]
    assert kinds.count("tumor") >= 2 and kinds.count("cyst") == 1
    for t in ph.truth["lesions"]:
        assert t["voxel_volume_ml"] == pytest.approx(t["volume_ml"], rel=0.05)
    # the liver sits in the right upper abdomen: patient right = -x in LPS
    idx = np.argwhere(lab == 1)
    centre = ph.ct.TransformContinuousIndexToPhysicalPoint(idx.mean(0)[::-1].tolist())
    assert centre[0] < -20


def test_orientations_draw_the_same_anatomy():
    kw = dict(spacing=(3.0, 3.0, 3.0), noise_hu=0, blur=False)
    a = make_small_phantom(orientation="LPS", **kw)
    b = make_small_phantom(orientation="RAI", **kw)
    assert not np.allclose(a.ct.GetDirection(), b.ct.GetDirection())
    la = sitk.GetArrayFromImage(sitk.DICOMOrient(a.labels, "LPS"))
    lb = sitk.GetArrayFromImage(sitk.DICOMOrient(b.labels, "LPS"))
    assert la.shape == lb.shape
    assert (la == lb).mean() > 0.999
    assert a.truth["liver"]["volume_ml"] == pytest.approx(b.truth["liver"]["volume_ml"], rel=0.002)


def test_anisotropic_permuted_and_tilted_grids():
    perm = make_small_phantom(spacing=(2.0, 3.0, 2.5), orientation="SLA", noise_hu=0)
    assert perm.ct.GetSpacing() == pytest.approx((2.0, 3.0, 2.5))
    tilt = make_small_phantom(spacing=(3.0, 3.0, 3.0), tilt_deg=15.0, noise_hu=0)
    d = np.reshape(tilt.ct.GetDirection(), (3, 3))
    assert np.count_nonzero(np.abs(d) > 1e-6) > 3  # oblique: not a signed permutation
    ref = make_small_phantom(spacing=(3.0, 3.0, 3.0), noise_hu=0)
    for ph in (perm, tilt):
        assert ph.truth["liver"]["volume_ml"] == pytest.approx(ref.truth["liver"]["volume_ml"],
                                                               rel=0.02)


def test_custom_lesions_vessels_and_contact_truth():
    trunk = Vessel((-80, 0, -20), (-80, 0, 60), 12.0, "thick")
    thin = Vessel((-40, 40, -20), (-40, 40, 60), 3.0, "thin")
    touching = Lesion(beside_vessel(trunk, (20, 20, 20), 0.5, (-1, 0, 0)), (20, 20, 20))
    apart = Lesion((-40, -20, 20), (30, 16, 16), rotation_deg=30)
    ph = make_small_phantom(lesions=[touching, apart], vessels=[trunk, thin], noise_hu=0)
    t0, t1 = ph.truth["lesions"]
    assert t0["touches_vessel"] and t0["contact_vessel_diameter_mm"] == 12.0
    assert not t1["touches_vessel"]
    assert (t1["longest_axial_mm"], t1["short_axis_mm"], t1["max_3d_mm"]) == (30, 16, 30)
    assert ph.truth["vessels"]["volume_ml"] > 0
    empty = make_small_phantom(lesions=[], vessels=[])
    assert set(np.unique(sitk.GetArrayViewFromImage(empty.labels))) == {0, 1}
    assert empty.truth["lesions"] == [] and empty.truth["tumor_burden_percent"] == 0


def test_seed_changes_noise_not_truth():
    a = make_small_phantom(seed=0)
    b = make_small_phantom(seed=1)
    assert a.truth["liver"]["volume_ml"] == b.truth["liver"]["volume_ml"]
    assert not np.array_equal(sitk.GetArrayViewFromImage(a.ct), sitk.GetArrayViewFromImage(b.ct))


def test_bad_orientation_is_refused():
    with pytest.raises(ValueError):
        make_phantom(orientation="LLS")
    assert len(default_vessels()) >= 10
