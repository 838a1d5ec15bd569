"""A found tumor's full extent by its attenuation relative to the parenchyma (tumor_extent rule)."""
from __future__ import annotations

import numpy as np
import pytest

from LiverLVTLib.core.labels import BACKGROUND, LIVER, TUMOR, VESSEL
from LiverLVTLib.evaluation.metrics import dice
from LiverLVTLib.segmentation.tumor_extent import TumorExtent, extend_tumors

SPACING = (1.5, 1.25, 1.25)  # z, y, x (mm)
SHAPE = (40, 64, 64)
CENTRE = (20, 32, 32)
RULE = TumorExtent()


def sphere(radius_mm, centre=CENTRE, shape=SHAPE):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, SPACING)) <= radius_mm ** 2


def liver_with_tumor(tumor_hu: float, parenchyma_hu: float = 110.0, seed: int = 0):
    """A liver block (parenchyma ``parenchyma_hu``) with a 15 mm-radius tumor of ``tumor_hu``
    (both with scanner noise), of which the network found only the lower half (labels)."""
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, parenchyma_hu, np.float32)
    truth = sphere(15.0)
    hu[truth] = tumor_hu
    hu += rng.normal(0.0, 10.0, SHAPE).astype(np.float32)
    labels = np.full(SHAPE, LIVER, np.uint8)
    labels[:, :, :4] = BACKGROUND
    found = truth.copy()
    found[CENTRE[0]:] = False  # the lower half only
    labels[found] = TUMOR
    return labels, hu, truth


@pytest.mark.parametrize("tumor_hu", [70.0, 150.0])  # hypo- (metastasis) and hyper-attenuating (arterial HCC)
def test_a_half_found_tumor_is_extended_to_its_own_attenuation(tumor_hu):
    labels, hu, truth = liver_with_tumor(tumor_hu)
    assert dice(labels == TUMOR, truth) < 0.70
    out = extend_tumors(labels, hu, SPACING, TumorExtent(reach_mm=16.0, max_growth=1.5))
    assert dice(out == TUMOR, truth) > 0.93
    assert np.count_nonzero((out == TUMOR) & ~truth) < 0.05 * np.count_nonzero(truth)  # no spill into parenchyma
    # the default reach (5 mm past the network's contour) extends it part of the way, never past it
    part = extend_tumors(labels, hu, SPACING, RULE) == TUMOR
    assert dice(labels == TUMOR, truth) + 0.1 < dice(part, truth) < dice(out == TUMOR, truth)
    assert not ((labels == BACKGROUND) & (out == TUMOR) & ~truth).any()


def test_vessels_and_iso_attenuating_or_small_lesions_are_left_alone():
    labels, hu, truth = liver_with_tumor(70.0)
    vein = truth & (np.arange(SHAPE[2]) == 32)[None, None, :] & (labels != TUMOR)
    labels[vein] = VESSEL
    out = extend_tumors(labels, hu, SPACING, RULE)
    assert (out[vein] == VESSEL).all()                    # never over a hepatic vessel
    iso_labels, iso_hu, _ = liver_with_tumor(104.0)      # 6 HU under the parenchyma: no sign to follow
    assert np.array_equal(extend_tumors(iso_labels, iso_hu, SPACING, RULE), iso_labels)
    small = TumorExtent(min_ml=50.0)                      # the half sphere is ~7 mL
    plain_labels, plain_hu, _ = liver_with_tumor(70.0)
    assert np.array_equal(extend_tumors(plain_labels, plain_hu, SPACING, small), plain_labels)
    assert np.array_equal(extend_tumors(labels, hu, SPACING, None), labels)  # off


def test_an_extension_larger_than_the_lesion_is_a_leak_and_is_not_applied():
    labels, hu, truth = liver_with_tumor(70.0)
    hu[CENTRE[0] + 6:CENTRE[0] + 12] = 70.0  # a slab above the tumor reads like it (a neighbouring organ)
    leaky = TumorExtent(reach_mm=20.0)
    assert np.array_equal(extend_tumors(labels, hu, SPACING, leaky), labels)
    # with a looser cap the same extension is applied: the cap, not the reach, stopped it
    assert np.count_nonzero(extend_tumors(labels, hu, SPACING, TumorExtent(reach_mm=20.0, max_growth=50.0)) == TUMOR) \
        > 2 * np.count_nonzero(labels == TUMOR)


def test_the_card_block_reads_as_off_defaults_or_fields():
    assert TumorExtent.of(None) is None and TumorExtent.of(False) is None
    assert TumorExtent.of(True) == TumorExtent()
    assert TumorExtent.of({"min_ml": 8}).min_ml == 8.0
    with pytest.raises(TypeError):
        TumorExtent.of({"no_such_field": 1})
