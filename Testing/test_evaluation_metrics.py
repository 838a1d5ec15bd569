"""Evaluation metrics against values computed by hand on small arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest

from LiverLVTLib.evaluation import metrics as M


def box(shape, lo, hi):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def ball(shape, centre, radius_mm, spacing):
    zz, yy, xx = np.indices(shape)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((zz, yy, xx), centre, spacing))
    return d2 <= radius_mm ** 2


def test_overlap_metrics_of_known_boxes():
    # A: 4x4x4 = 64 voxels, B: A shifted by 2 along x -> overlap 4x4x2 = 32, union 96
    shape = (8, 8, 10)
    a, b = box(shape, (2, 2, 2), (6, 6, 6)), box(shape, (2, 2, 4), (6, 6, 8))
    m = M.overlap_metrics(a, b)
    assert m["dice"] == pytest.approx(2 * 32 / 128)
    assert m["voe"] == pytest.approx(1 - 32 / 96)
    assert m["sensitivity"] == pytest.approx(0.5) and m["precision"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx((640 - 64) / 640)  # 32 FP + 32 FN of 640 voxels
    # prediction inside the reference: precision 1, sensitivity = 32/64
    inner = box(shape, (2, 2, 2), (6, 6, 4))
    m = M.overlap_metrics(inner, a)
    assert (m["precision"], m["sensitivity"]) == (pytest.approx(1.0), pytest.approx(0.5))
    assert M.dice(inner, a) == pytest.approx(2 * 32 / 96)


def test_empty_mask_conventions():
    empty, full = np.zeros((4, 4, 4), bool), box((4, 4, 4), (1, 1, 1), (3, 3, 3))
    assert M.dice(empty, empty) == 1.0 and M.voe(empty, empty) == 0.0
    assert M.dice(full, empty) == 0.0 and M.dice(empty, full) == 0.0
    assert M.hd95(full, empty, (1, 1, 1)) is None and M.nsd(empty, full, (1, 1, 1), 3.0) is None
    m = M.overlap_metrics(empty, full)
    assert m["precision"] is None and m["sensitivity"] == 0.0


def test_hd95_and_nsd_of_a_grown_cube():
    """A = 11^3 cube, B = A grown by one voxel (13^3), isotropic 1.5 mm. Surface voxels of A all
    lie 1 voxel from B's; B's surface: 726 face voxels at 1, 132 edge voxels at sqrt(2), 8 corners
    at sqrt(3) voxels from A's surface (A has 11^3 - 9^3 = 602, B 13^3 - 11^3 = 866 surface voxels)."""
    shape, s = (16, 16, 16), 1.5
    a, b = box(shape, (2, 2, 2), (13, 13, 13)), box(shape, (1, 1, 1), (14, 14, 14))
    sp = (s, s, s)
    # 95th percentile of B->A lies among the edge voxels (83.8 % .. 99.1 %): sqrt(2) voxels
    assert M.hd95(a, b, sp) == pytest.approx(s * math.sqrt(2), abs=1e-4)
    assert M.hd95(a, b, sp, percentile=100) == pytest.approx(s * math.sqrt(3), abs=1e-4)
    assert M.nsd(a, b, sp, tolerance_mm=0.9 * s) == pytest.approx(0.0)
    assert M.nsd(a, b, sp, tolerance_mm=1.0 * s) == pytest.approx((602 + 726) / (602 + 866), abs=1e-5)
    assert M.nsd(a, b, sp, tolerance_mm=1.5 * s) == pytest.approx((602 + 858) / (602 + 866), abs=1e-5)
    assert M.nsd(a, b, sp, tolerance_mm=2.0 * s) == pytest.approx(1.0)
    assert M.hd95(a, a, sp) == pytest.approx(0.0) and M.nsd(a, a, sp, 0.5) == pytest.approx(1.0)


def test_hd_of_shifted_spheres_uses_zyx_spacing():
    """Two 12 mm balls shifted by 3 slices along z at 2 mm slice spacing: the Hausdorff distance
    is the 6 mm shift (3 mm if the spacing were applied in x,y,z order), HD95 slightly below."""
    shape, sp = (30, 36, 36), (2.0, 1.0, 1.0)
    a, b = ball(shape, (14, 18, 18), 12.0, sp), ball(shape, (17, 18, 18), 12.0, sp)
    assert M.hd95(a, b, sp, percentile=100) == pytest.approx(6.0, abs=1e-4)
    assert 4.0 < M.hd95(a, b, sp) <= 6.0 + 1e-4
    # a 6 mm shift is within the 7 mm liver tolerance, not within 3 mm
    assert M.nsd(a, b, sp, 7.0) == pytest.approx(1.0)
    assert M.nsd(a, b, sp, 3.0) < 0.8


def test_lesion_detection_10_percent_and_lits_rules():
    shape = (12, 30, 30)
    ref = np.zeros(shape, bool)
    ref |= box(shape, (2, 2, 2), (6, 6, 6))      # lesion 1: 64 voxels
    ref |= box(shape, (2, 12, 12), (6, 16, 16))  # lesion 2: 64 voxels
    ref |= box(shape, (2, 22, 22), (6, 26, 26))  # lesion 3: 64 voxels
    pred = np.zeros(shape, bool)
    pred |= box(shape, (2, 2, 2), (6, 6, 6))         # lesion 1 exactly: found, IoU 1
    pred |= box(shape, (2, 12, 12), (6, 16, 13))     # 16/64 = 25 % of lesion 2: found, IoU 0.25
    pred |= box(shape, (2, 22, 22), (3, 23, 26))     # 4/64 = 6 % of lesion 3: missed
    pred |= box(shape, (8, 2, 20), (10, 4, 22))      # a false positive far away
    d = M.lesion_detection(pred, ref)
    assert d["reference_lesions"] == 3 and d["predicted_lesions"] == 4
    assert d["lesions_found"] == 2 and d["lesions_missed"] == 1
    assert d["lesion_sensitivity"] == pytest.approx(2 / 3)
    # predicted lesions 1-3 lie entirely in the reference; the 4th is false
    assert d["false_positive_lesions"] == 1 and d["lesion_precision"] == pytest.approx(3 / 4)
    assert d["lesion_sensitivity_lits"] == pytest.approx(1 / 3)
    assert d["lesion_precision_lits"] == pytest.approx(1 / 4)


def test_lesions_are_26_connected():
    ref = np.zeros((6, 6, 6), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True  # touching by a corner only: one lesion
    assert M.lesion_detection(ref, ref)["reference_lesions"] == 1


def test_class_masks_follow_the_hierarchy():
    labels = np.array([0, 1, 2, 3], np.uint8).reshape(1, 1, 4)
    assert M.class_mask(labels, "liver").tolist() == [[[False, True, True, True]]]
    assert M.class_mask(labels, "vessel").sum() == 1 and M.class_mask(labels, "tumor")[0, 0, 3]


def test_empty_reference_reports_false_positives_not_dice():
    """An annotated absence (ircadb-1.7 tumor): no Dice, a false-positive volume, precision 0."""
    sp = (2.0, 1.0, 1.0)  # 2 uL voxels
    ref = np.zeros((6, 10, 10), np.uint8)
    ref[1:5, 2:8, 2:8] = 1
    pred = ref.copy()
    pred[2:4, 3:5, 3:5] = 3  # 8 voxels of false tumor
    scores = M.score_labels(pred, ref, sp, classes=["liver", "tumor"])
    assert set(scores) == {"liver", "tumor"}
    tumor = scores["tumor"]
    assert tumor["reference_empty"] and tumor["dice"] is None and tumor["hd95_mm"] is None
    assert tumor["fp_volume_ml"] == pytest.approx(8 * 0.002)
    assert tumor["lesion_precision"] == 0.0 and tumor["lesion_sensitivity"] is None
    assert scores["liver"]["dice"] == pytest.approx(1.0)
    clean = M.score_labels(ref, ref, sp, classes=["tumor"])["tumor"]
    assert clean["fp_volume_ml"] == 0.0 and clean["lesion_precision"] is None


def test_summary_and_relative_difference():
    s = M.summarize([0.8, None, 0.9, 1.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.9) and s["sd"] == pytest.approx(0.1)
    assert M.summarize([None])["mean"] is None
    assert M.relative_difference_percent(1000.0, 1100.0) == pytest.approx(100 * 100 / 1050)


def test_surface_metrics_agree_with_monai_top_level_functions():
    """hd95/nsd share one surface-distance computation; they must equal MONAI's own
    compute_hausdorff_distance / compute_surface_dice on irregular shapes."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice
    from scipy import ndimage

    rng = np.random.default_rng(0)
    sp = (2.5, 0.8, 0.8)
    a = ndimage.gaussian_filter(rng.random((14, 30, 30)), 2) > 0.5
    b = ndimage.gaussian_filter(rng.random((14, 30, 30)), 2) > 0.5
    ta, tb = (torch.from_numpy(m.astype(np.float32))[None, None] for m in (a, b))
    ref_hd = float(compute_hausdorff_distance(ta, tb, include_background=True, percentile=95,
                                              spacing=list(sp)))
    ref_nsd = float(compute_surface_dice(ta, tb, [3.0], include_background=True, spacing=list(sp)))
    assert M.hd95(a, b, sp) == pytest.approx(ref_hd, rel=1e-5)
    assert M.nsd(a, b, sp, 3.0) == pytest.approx(ref_nsd, rel=1e-5)
    record = M.score_class(a, b, sp, 3.0)
    assert record["hd95_mm"] == pytest.approx(ref_hd, rel=1e-5)


def test_centreline_metrics_see_a_broken_vessel_tree():
    """clDice / skeleton recall: a tube cut into pieces keeps most of its Dice but loses its
    centre line; a perfect prediction scores 1."""
    from LiverLVTLib.evaluation.metrics import centre_voxels, centreline_metrics

    z, y, x = np.mgrid[:40, :40, :80]
    tube = ((z - 20) ** 2 + (y - 20) ** 2) <= 9
    skel = centre_voxels(tube)
    assert 60 < skel.sum() < 0.1 * tube.sum() and np.all(tube[skel])  # ~ the 80-voxel axis
    same = centreline_metrics(tube, tube)
    assert same["cldice"] == pytest.approx(1.0) and same["skeleton_recall"] == pytest.approx(1.0)
    thin = tube & (((z - 20) ** 2 + (y - 20) ** 2) <= 4)  # under-segmented but continuous
    thin_m = centreline_metrics(thin, tube)
    assert thin_m["skeleton_recall"] > 0.8
    broken = tube & ((x // 8) % 2 == 0)  # every other 8-voxel piece missing
    broken_m = centreline_metrics(broken, tube)
    assert broken_m["skeleton_recall"] < 0.65 and broken_m["cldice"] < thin_m["cldice"]
    assert centreline_metrics(np.zeros_like(tube), tube)["cldice"] == 0.0
