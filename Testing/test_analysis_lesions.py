"""Lesion measurements on phantoms with known answers (anisotropic, flipped and oblique grids)."""
import math

import numpy as np
import pytest

from LiverLVTLib.analysis.measure import analyze_case
from LiverLVTLib.synthetic.phantom import Lesion, make_phantom

SPACING = (0.8, 0.8, 2.5)
FOV = dict(fov_mm=(170.0, 170.0, 130.0), center_mm=(-70.0, 0.0, 25.0))
SPHERE = Lesion((-95.0, 10.0, 20.0), (30.0, 30.0, 30.0), "tumor", 50.0, 0.0, "sphere", texture_hu=0)
ELLIPSOID = Lesion((-50.0, -35.0, 45.0), (42.0, 16.0, 20.0), "tumor", 55.0, 35.0, "ellipsoid",
                   texture_hu=0)


def _tol(spacing):
    return max(1.5, math.sqrt(sum(s * s for s in spacing)))


def _case(orientation, spacing=SPACING, **kw):
    ph = make_phantom(spacing=spacing, orientation=orientation, lesions=[SPHERE, ELLIPSOID],
                      vessels=[], noise_hu=0, **FOV, **kw)
    return ph, analyze_case(ph.ct, ph.labels)


@pytest.fixture(scope="module")
def lai():
    return _case("LAI")


@pytest.fixture(scope="module")
def rps():
    return _case("RPS")


def test_diameters_and_volumes_match_truth(lai):
    ph, res = lai
    assert [les["id"] for les in res["lesions"]] == [1, 2]
    truth = {t["name"]: t for t in ph.truth["lesions"]}
    # ordered by volume: the 30 mm sphere (14.1 mL) before the 42x16x20 ellipsoid (7.0 mL)
    for les, name in zip(res["lesions"], ("sphere", "ellipsoid")):
        t = truth[name]
        tol = _tol(SPACING)
        assert les["longest_axial_mm"] == pytest.approx(t["longest_axial_mm"], abs=tol)
        assert les["short_axis_mm"] == pytest.approx(t["short_axis_mm"], abs=tol)
        assert les["max_3d_mm"] == pytest.approx(t["max_3d_mm"], abs=tol)
        assert les["volume_ml"] == pytest.approx(t["volume_ml"], rel=0.05)
        assert les["centroid_ras"] == pytest.approx(t["center_ras"], abs=0.6)
        assert les["classification"] == "tumor"
        assert les["mean_hu"] == pytest.approx(t["hu"], abs=8)  # partial-volume rim
        assert les["vessel_contact"]["in_contact"] is False


def test_endpoints_lie_on_the_axial_slice_and_match_lengths(lai):
    _, res = lai
    for les in res["lesions"]:
        (p0, p1), (q0, q1) = np.asarray(les["axial_endpoints_ras"][0]), np.asarray(les["axial_endpoints_ras"][1])
        assert np.linalg.norm(p1 - p0) == pytest.approx(les["longest_axial_mm"], abs=0.1)
        assert np.linalg.norm(q1 - q0) == pytest.approx(les["short_axis_mm"], abs=0.1)
        # same axial plane (constant S) and perpendicular
        assert {round(v, 3) for v in (p0[2], p1[2], q0[2], q1[2])} == {les["axial_slice_s_mm"]}
        assert abs(np.dot(p1 - p0, q1 - q0)) < 1e-3 * les["longest_axial_mm"] * les["short_axis_mm"]
        f0, f1 = np.asarray(les["max_3d_endpoints_ras"])
        assert np.linalg.norm(f1 - f0) == pytest.approx(les["max_3d_mm"], abs=0.01)


def test_elongated_lesion_long_axis_follows_its_rotation(lai):
    _, res = lai
    ell = res["lesions"][1]
    (p0, p1) = np.asarray(ell["axial_endpoints_ras"][0])
    d = (p1 - p0)[:2]
    # rotated 35 deg about S in LPS; in RAS both x and y flip, which keeps the line's angle
    angle = math.degrees(math.atan2(d[1], d[0])) % 180
    assert angle == pytest.approx(35, abs=6)


def test_same_anatomy_in_two_orientations_gives_the_same_numbers(lai, rps):
    a, b = lai[1], rps[1]
    assert a["image"]["orientation"] != b["image"]["orientation"]
    for la, lb in zip(a["lesions"], b["lesions"]):
        for key in ("volume_ml", "longest_axial_mm", "short_axis_mm", "max_3d_mm", "mean_hu",
                    "std_hu", "cyst_fit_mean_hu", "axial_slice_s_mm"):
            assert la[key] == pytest.approx(lb[key], abs=2e-3), key
        assert la["centroid_ras"] == pytest.approx(lb["centroid_ras"], abs=2e-3)
    assert a["liver"]["volume_ml"] == pytest.approx(b["liver"]["volume_ml"], abs=2e-3)
    assert a["staging"] == b["staging"]


def test_permuted_axes_and_gantry_tilt():
    # array axes permuted (k = left-right), spacing per axis follows them
    _, res = _case("SLA", spacing=(2.5, 0.8, 0.8))
    _, ref = _case("LAI")
    for la, lb in zip(res["lesions"], ref["lesions"]):
        assert la["longest_axial_mm"] == pytest.approx(lb["longest_axial_mm"], abs=1e-3)
        assert la["max_3d_mm"] == pytest.approx(lb["max_3d_mm"], abs=1e-3)
    # oblique grid (15 deg tilt): axial plane is not an array plane; still within tolerance
    ph, tilted = _case("LPS", spacing=(1.0, 1.0, 2.0), tilt_deg=15.0)
    assert tilted["image"]["oblique"] is True
    truth = {t["name"]: t for t in ph.truth["lesions"]}
    for les, name in zip(tilted["lesions"], ("sphere", "ellipsoid")):
        tol = _tol((1.0, 1.0, 2.0))
        assert les["longest_axial_mm"] == pytest.approx(truth[name]["longest_axial_mm"], abs=tol)
        assert les["short_axis_mm"] == pytest.approx(truth[name]["short_axis_mm"], abs=tol)
        assert les["max_3d_mm"] == pytest.approx(truth[name]["max_3d_mm"], abs=tol)


def test_lesion_masks_follow_each_record_not_the_order():
    """The single lesion identity: masks come from each record's own seed voxel, so deleting or
    renumbering lesions (Segment Editor) never hands one lesion another's voxels."""
    from LiverLVTLib.analysis.lesions import Grid, find_lesions, lesion_masks

    lab = np.zeros((30, 40, 40), np.uint8)
    lab[2:12, 2:14, 2:14] = 3      # big
    lab[20:24, 25:29, 25:29] = 3   # small
    lab[15:17, 5:7, 30:32] = 3     # tiny
    grid = Grid(np.ones(3), np.zeros(3), np.eye(3))
    cc, lesions = find_lesions(lab, grid)
    assert [les.voxels for les in lesions] == [1440, 64, 8]  # ids by decreasing volume
    records = [{"id": n, "seed_ijk": list(les.seed_zyx[::-1])} for n, les in enumerate(lesions, 1)]
    masks = lesion_masks(lab, records)
    assert {k: int(v[1].sum()) for k, v in masks.items()} == {1: 1440, 2: 64, 3: 8}
    # the big lesion is deleted: lesion 2 and 3 keep their own voxels (the order would shift)
    edited = lab.copy()
    edited[2:12, 2:14, 2:14] = 1
    masks = lesion_masks(edited, records)
    assert 1 not in masks and int(masks[2][1].sum()) == 64 and int(masks[3][1].sum()) == 8
    box, crop = masks[2]
    assert np.all(edited[box][crop] == 3)
