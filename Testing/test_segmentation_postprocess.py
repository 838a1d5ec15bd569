"""Post-processing on small arrays with known answers."""
from __future__ import annotations

import numpy as np

from LiverLVTLib.core.labels import BACKGROUND, LIVER, TUMOR, VESSEL
from LiverLVTLib.segmentation.postprocess import (
    clean_labels,
    confident_organ,
    exclusive_labels,
    fill_tumors,
    grow_tumors,
    liver_contact,
    main_organ,
    tumor_mimics,
    unconfident_tumors,
    vessel_like_tumors,
)

SPACING = (2.0, 1.0, 1.0)  # anisotropic z, y, x (mm)


def sphere(shape, center, radius_mm, spacing=SPACING):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing)) <= radius_mm ** 2


def test_exclusive_labels_follow_tumor_vessel_liver_hierarchy():
    probs = np.zeros((3, 1, 1, 4), np.float32)
    probs[0] = 0.9                       # liver everywhere
    probs[1, 0, 0, 1:3] = 0.8            # vessel in voxels 1, 2
    probs[2, 0, 0, 2:4] = 0.7            # tumor in voxels 2, 3
    assert exclusive_labels(probs).ravel().tolist() == [LIVER, VESSEL, TUMOR, TUMOR]


def test_islands_outside_the_liver_are_removed():
    shape = (20, 40, 40)
    labels = np.zeros(shape, np.uint8)
    labels[sphere(shape, (10, 15, 15), 10)] = LIVER
    labels[sphere(shape, (10, 15, 15), 3)] = TUMOR               # tumor inside the liver
    labels[sphere(shape, (10, 35, 35), 3)] = LIVER               # spleen-like island
    labels[sphere(shape, (3, 35, 5), 2)] = VESSEL                # vessel far from the liver
    out = clean_labels(labels, SPACING, min_tumor_ml=0.0, liver_margin_mm=3)
    assert (out[sphere(shape, (10, 35, 35), 3)] == 0).all()
    assert (out[sphere(shape, (3, 35, 5), 2)] == 0).all()
    assert (out[sphere(shape, (10, 15, 15), 3)] == TUMOR).all()


def test_small_tumor_islands_and_spurs_go_back_to_parenchyma():
    shape = (20, 40, 40)
    labels = np.zeros(shape, np.uint8)
    labels[sphere(shape, (10, 20, 20), 15)] = LIVER
    big = sphere(shape, (10, 14, 20), 5)
    labels[big] = TUMOR
    labels[10, 28, 20] = TUMOR                                   # one-voxel "tumor" (1 uL)
    out = clean_labels(labels, SPACING, min_tumor_ml=0.05, liver_margin_mm=3)
    assert out[10, 28, 20] == LIVER
    assert (out[big] == TUMOR).mean() > 0.95


def test_thin_bridge_to_a_neighbour_is_cut():
    shape = (24, 40, 80)
    organ = sphere(shape, (12, 20, 20), 14) | sphere(shape, (12, 20, 60), 12)
    organ[11:13, 19:21, 20:60] = True                            # 2 mm thick bridge
    kept = main_organ(organ, SPACING, bridge_mm=3.0)
    assert kept[12, 20, 20] and not kept[12, 20, 60]
    # without the bridge rule the two blobs are one component
    assert main_organ(organ, SPACING, bridge_mm=0.0)[12, 20, 60]
    # the kept liver keeps its own surface voxels
    assert kept.sum() >= sphere(shape, (12, 20, 20), 14).sum()


def test_a_thick_leak_far_from_the_confident_liver_is_dropped():
    """A liver the network is sure of (p 0.99) with an uncertain 3 mm surface shell (p 0.6) and a
    thick, broadly joined neighbour it is unsure of (p 0.75, a full stomach): the neighbour goes
    beyond core_mm, the liver's own shell and a tumor inside it stay."""
    shape = (30, 60, 100)
    liver = sphere(shape, (15, 30, 30), 24)
    core = sphere(shape, (15, 30, 30), 21)
    leak = sphere(shape, (15, 30, 62), 18) & ~liver            # touches the liver broadly
    labels = np.zeros(shape, np.uint8)
    labels[liver | leak] = LIVER
    tumor = sphere(shape, (15, 30, 30), 6)
    labels[tumor] = TUMOR
    prob = np.zeros(shape, np.float32)
    prob[liver] = 0.6
    prob[core] = 0.99
    prob[leak] = 0.75
    out = confident_organ(labels, prob, SPACING, core_probability=0.9, core_mm=8.0)
    assert (out[liver] == labels[liver]).all(), "the liver, its uncertain shell and tumor stay"
    far = leak & ~sphere(shape, (15, 30, 30), 21 + 8 + 1)
    assert far.sum() > 1000 and not out[far].any(), "the leak beyond 8 mm of the core goes"
    # the plain rules keep it: one connected organ, no bridge to cut
    assert (clean_labels(labels, SPACING, min_tumor_ml=0.0, liver_bridge_mm=5.0)[far] == LIVER).all()
    # off (probability 0), or nowhere sure: unchanged
    assert np.array_equal(confident_organ(labels, prob, SPACING, 0.0, 8.0), labels)
    assert np.array_equal(confident_organ(labels, prob * 0.5, SPACING, 0.9, 8.0), labels)


def test_tumor_components_that_look_more_like_vessel_go_to_the_vessel_tree():
    """Two tumor candidates: a vein segment (vessel prob 0.9 > tumor 0.7) and a lesion
    (vessel 0.6 < tumor 0.8). With a 0.05 margin only the vein segment is reassigned: vessel
    where its vessel channel is on, parenchyma at its rim; margin < 0 changes nothing."""
    probs = np.zeros((3, 1, 1, 10), np.float32)
    probs[0] = 0.95
    probs[1, 0, 0, 0:3], probs[2, 0, 0, 0:4] = 0.9, 0.7     # vein: voxels 0-2, tumor 0-3
    probs[1, 0, 0, 3] = 0.4                                  # rim voxel: tumor only
    probs[1, 0, 0, 6:9], probs[2, 0, 0, 6:9] = 0.6, 0.8     # lesion: voxels 6-8
    labels = exclusive_labels(probs)
    assert labels.ravel().tolist() == [TUMOR] * 4 + [LIVER] * 2 + [TUMOR] * 3 + [LIVER]
    out = vessel_like_tumors(labels, probs, margin=0.05)
    assert out.ravel().tolist() == [VESSEL] * 3 + [LIVER] * 3 + [TUMOR] * 3 + [LIVER]
    assert vessel_like_tumors(labels, probs, margin=-1).tolist() == labels.tolist()
    # a vein whose vessel probability is only slightly higher stays tumor under a larger margin
    assert (vessel_like_tumors(labels, probs, margin=0.3) == labels).all()


def _liver_with_candidates():
    """A 40^3 liver block (HU 100) with an inner dark tumor, a bright inner 'vein' candidate and a
    candidate that hangs mostly outside the liver (a gallbladder-like blob)."""
    labels = np.zeros((60, 60, 60), np.uint8)
    labels[10:50, 10:50, 10:50] = LIVER
    hu = np.full(labels.shape, -50.0, np.float32)
    hu[labels == LIVER] = 100.0
    labels[20:26, 20:26, 20:26] = TUMOR          # inside: hypo-attenuating tumor
    hu[20:26, 20:26, 20:26] = 60.0
    labels[30:36, 30:36, 30:36] = TUMOR          # inside: +80 HU, an enhancing vein
    hu[30:36, 30:36, 30:36] = 180.0
    labels[46:56, 20:28, 20:28] = TUMOR          # 4 of 10 slices in the liver, the rest outside
    hu[46:56, 20:28, 20:28] = 10.0
    probs = np.zeros((3, *labels.shape), np.float32)
    probs[0][labels > 0] = 0.9
    probs[0][50:56] = 0.1                        # the liver channel is off outside the liver
    probs[1][30:36, 30:36, 30:36] = 0.7
    probs[2][labels == TUMOR] = 0.9
    return labels, probs, hu


def test_liver_contact_is_the_liver_share_around_a_component():
    labels, _, _ = _liver_with_candidates()
    inner = np.zeros(labels.shape, bool)
    inner[20:26, 20:26, 20:26] = True
    outer = np.zeros(labels.shape, bool)
    outer[46:56, 20:28, 20:28] = True
    assert liver_contact(inner, labels) == 1.0
    assert liver_contact(outer, labels) < 0.45


def test_tumor_mimics_take_back_extrahepatic_and_enhancing_candidates_only():
    labels, probs, hu = _liver_with_candidates()
    out = tumor_mimics(labels, probs, hu, min_liver_contact=0.45, max_excess_hu=65)
    assert (out[20:26, 20:26, 20:26] == TUMOR).all()           # the real tumor stays
    assert (out[30:36, 30:36, 30:36] == VESSEL).all()          # the vein goes to the vessel tree
    assert not (out[46:56, 20:28, 20:28] == TUMOR).any()       # the outside blob is no tumor
    assert (out[50:56, 20:28, 20:28] == 0).all()               # ... and background off the liver
    assert (out[46:50, 20:28, 20:28] == LIVER).all()           # ... liver where the channel is on
    off = tumor_mimics(labels, probs, hu)                      # rules off: nothing changes
    assert np.array_equal(off, labels)
    hyper = tumor_mimics(labels, probs, hu, max_excess_hu=90)  # +80 HU passes a looser rule
    assert (hyper[30:36, 30:36, 30:36] == TUMOR).all()


def test_fluid_beside_the_liver_is_no_tumor_but_an_intrahepatic_cyst_is_kept():
    shape = (40, 40, 60)
    labels = np.zeros(shape, np.uint8)
    labels[:, :, :40] = LIVER
    hu = np.full(shape, 110.0, np.float32)                 # portal-venous parenchyma
    probs = np.zeros((3,) + shape, np.float32)
    probs[0][:, :, :40] = 1.0
    bladder = np.zeros(shape, bool)
    bladder[14:26, 14:26, 33:45] = True                   # gallbladder: 7 of 12 columns in the liver
    cyst = np.zeros(shape, bool)
    cyst[14:22, 14:22, 10:18] = True                      # simple cyst wrapped in liver
    solid = np.zeros(shape, bool)
    solid[28:36, 28:36, 34:46] = True                     # solid hypo tumor at the edge
    for mask, value in ((bladder, 8.0), (cyst, 5.0), (solid, 60.0)):
        labels[mask], hu[mask] = TUMOR, value
    assert 0.45 < liver_contact(bladder, labels) < 0.7     # passes the plain contact rule
    out = tumor_mimics(labels, probs, hu, min_liver_contact=0.45, fluid=(20.0, 0.7))
    assert not (out[bladder] == TUMOR).any()
    assert (out[bladder & (probs[0] >= 0.5)] == LIVER).all() and (out[bladder & (probs[0] < 0.5)] == 0).all()
    assert (out[cyst] == TUMOR).all() and (out[solid] == TUMOR).all()
    assert (tumor_mimics(labels, probs, hu, min_liver_contact=0.45)[bladder] == TUMOR).all()  # off


def test_tumor_candidates_without_a_confident_core_go_back_to_parenchyma():
    labels = np.full((40, 40, 40), LIVER, np.uint8)
    probs = np.zeros((3,) + labels.shape, np.float32)
    probs[0] = 1.0
    confident, doubtful = sphere(labels.shape, (12, 12, 12), 8.0), sphere(labels.shape, (28, 28, 28), 8.0)
    for mask, peak in ((confident, 0.9999), (doubtful, 0.97)):
        labels[mask] = TUMOR
        probs[2][mask] = 0.7                      # both exceed the outline threshold everywhere
        probs[2][tuple(int(np.mean(ax)) for ax in np.nonzero(mask))] = peak
    out = unconfident_tumors(labels, probs, min_peak=0.999)
    assert (out[confident] == TUMOR).all()         # one voxel at 0.9999 carries the whole lesion
    assert (out[doubtful] == LIVER).all()          # peak 0.97: no lesion, parenchyma again
    assert np.array_equal(unconfident_tumors(labels, probs, min_peak=0.0), labels)   # off
    assert np.array_equal(unconfident_tumors(labels, probs, min_peak=0.9), labels)   # both pass


def test_tumor_hysteresis_low_end_grows_kept_lesions_only():
    """A confident lesion grows into its connected low-probability rim (a heterogeneous tumor's
    atypical part); a separate low-probability blob never becomes a lesion; vessels stay."""
    shape = (20, 40, 40)
    labels = np.zeros(shape, np.uint8)
    labels[sphere(shape, (10, 20, 20), 18)] = LIVER
    probs = np.zeros((3,) + shape, np.float32)
    core = sphere(shape, (10, 14, 20), 3)
    rim = sphere(shape, (10, 14, 20), 6) & ~core
    lone = sphere(shape, (10, 28, 20), 3)              # unseeded: under 0.5 everywhere
    vessel = np.zeros(shape, bool)
    vessel[:, 14, 25:27] = True                        # a vein inside the rim
    labels[core] = TUMOR
    labels[vessel & labels.astype(bool)] = VESSEL
    probs[2][core] = 0.99
    probs[2][rim] = 0.3
    probs[2][lone] = 0.3
    out = grow_tumors(labels, probs, low=0.25, spacing_zyx=SPACING)
    assert (out[rim & ~vessel] == TUMOR).all()
    assert (out[vessel & (labels == VESSEL)] == VESSEL).all()
    assert not (out[lone] == TUMOR).any()
    assert np.array_equal(grow_tumors(labels, probs, low=0.35, spacing_zyx=SPACING), labels)  # rim under it
    assert np.array_equal(grow_tumors(labels, probs, low=0.0, spacing_zyx=SPACING), labels)   # off


def test_tumor_fill_takes_in_what_a_lesion_encloses_inside_the_organ_only():
    shape = (24, 48, 64)
    labels = np.zeros(shape, np.uint8)
    labels[sphere(shape, (12, 24, 20), 20)] = LIVER
    shell = sphere(shape, (12, 24, 20), 10) & ~sphere(shape, (12, 24, 20), 6)
    centre = sphere(shape, (12, 24, 20), 6)
    labels[shell] = TUMOR
    labels[centre & sphere(shape, (12, 24, 20), 3)] = VESSEL  # an intratumoral artery
    # an open C (a 3 mm slit through the ring) closes with the ball
    ring = sphere(shape, (12, 24, 46), 9) & ~sphere(shape, (12, 24, 46), 5)
    gap = np.zeros(shape, bool)
    gap[:, 24:, 45:48] = True
    labels[sphere(shape, (12, 24, 46), 14)] = LIVER
    labels[ring & ~gap] = TUMOR
    labels[sphere(shape, (12, 24, 46), 2)] = BACKGROUND  # no organ here: stays outside
    out = fill_tumors(labels, SPACING, closing_mm=4.0)
    assert (out[centre] == TUMOR).all()                       # ring filled, artery included
    inner_c = sphere(shape, (12, 24, 46), 5) & ~sphere(shape, (12, 24, 46), 2)
    assert (out[inner_c & ~gap] == TUMOR).all()
    assert (out[sphere(shape, (12, 24, 46), 2)] == 0).all()   # never over background
    assert (out[labels == LIVER] != TUMOR).sum() < (labels == LIVER).sum()  # parenchyma kept
    outside = sphere(shape, (12, 24, 20), 20) & ~sphere(shape, (12, 24, 20), 12)
    assert not (out[:, :, :30][outside[:, :, :30]] == TUMOR).any()  # nothing grows outward
    assert np.array_equal(fill_tumors(labels, SPACING, closing_mm=0.0), labels)  # off
