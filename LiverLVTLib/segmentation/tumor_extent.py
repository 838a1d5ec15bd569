"""A found tumor's full extent by its own attenuation (post-processing on the model grid).

The cross-validation showed the network outlining large tumors only around their most typical
part: in every v12/v20 fold model the 84 mL peripheral metastasis of ircadb-1.1 and the 28 mL
arterial-phase HCC of radcttaceomics-1211-ap were covered about half, at voxel precision
0.97-0.99; a lower probability threshold (or a Tversky loss) reached them but grew false tumor
elsewhere just as much. What sets the rest of such a tumor apart is not the network's
probability but the attenuation the tumor shares: LI-RADS v2018 (and radiology generally)
calls a lesion hypo-, iso- or hyper-attenuating *relative to the background liver*, and a
tumor's uncovered part keeps that sign (ircadb-1.1: found part 66 HU, uncovered part 83 HU,
parenchyma 113 HU; 1211-ap: 86 / 72 / 55 HU).

:func:`extend_tumors` grows each large confident tumor into the contiguous tissue whose smoothed
attenuation lies on the tumor's side of the midpoint between tumor and parenchyma, within
``reach_mm`` of the network's contour, inside the organ zone, never over a hepatic vessel; an extension
larger than ``max_growth`` times the lesion is a leak along a vein or into a neighbouring organ
and is not applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cc3d
import numpy as np
from scipy import ndimage

from ..core.labels import BACKGROUND, LIVER, TUMOR, VESSEL
from .postprocess import within_mm


@dataclass(frozen=True)
class TumorExtent:
    """The card's ``tumor_extent`` block (every field has a default)."""
    min_ml: float = 5.0             # only lesions at least this large (small ones are outlined whole)
    min_contrast_hu: float = 15.0   # |tumor median - parenchyma median|: below this the sign is noise
    sigma_mm: float = 1.5           # Gaussian smoothing of the CT before the attenuation test
    midpoint: float = 0.5           # 0.5: the halfway HU between parenchyma and tumor
    max_beyond_hu: float = 30.0     # never into tissue this much more extreme than the tumor (fat, fluid, contrast)
    reach_mm: float = 5.0           # how far past the network's contour (its tumor edge sits inside the lesion's)
    organ_margin_mm: float = 10.0   # and at most this far outside the predicted liver (a bulging tumor)
    max_growth: float = 1.0         # an extension larger than this times the lesion is a leak
    min_shell_fill: float = 0.0     # >0: extend only where this share of the reach shell is lesion-like (the contour cuts through the tumor); 0.35 measured, not shipped

    @classmethod
    def of(cls, block) -> Optional["TumorExtent"]:
        """The card's value: absent, null or false -> None (off); true -> defaults; a dict -> fields."""
        if not block:
            return None
        return cls() if block is True else cls(**block)


def extend_tumors(labels: np.ndarray, hu: np.ndarray, spacing_zyx: Sequence[float],
                  rule: Optional[TumorExtent]) -> np.ndarray:
    """Each tumor component of at least ``rule.min_ml`` grows by its attenuation (module doc);
    returns new labels (the input when the rule is off or nothing qualifies)."""
    tumor = labels == TUMOR
    parenchyma = labels == LIVER
    if rule is None or not tumor.any() or not parenchyma.any():
        return labels
    spacing = np.asarray(spacing_zyx, float)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    reference_hu = float(np.median(hu[parenchyma]))
    comps = cc3d.connected_components(tumor.astype(np.uint8), connectivity=26)
    counts = np.bincount(comps.ravel())
    large = [k for k in range(1, len(counts)) if counts[k] * voxel_ml >= rule.min_ml]
    if not large:
        return labels
    organ = within_mm(labels > BACKGROUND, spacing, rule.organ_margin_mm)
    out = labels.copy()
    boxes = ndimage.find_objects(comps)
    for k in large:
        _extend_one(out, comps, k, boxes[k - 1], hu, organ, reference_hu, spacing, rule)
    return out


def _extend_one(out, comps, k, box, hu, organ, reference_hu, spacing, rule: TumorExtent) -> None:
    """Grow component ``k`` of ``comps`` in ``out`` (in place), within a box padded by its reach."""
    count = int(np.count_nonzero(comps[box] == k))
    pad = np.ceil((rule.reach_mm + 3.0 * rule.sigma_mm) / spacing).astype(int) + 1
    box = tuple(slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(box, pad, comps.shape))
    lesion = comps[box] == k
    lesion_hu = float(np.median(hu[box][lesion]))
    contrast = lesion_hu - reference_hu
    if abs(contrast) < rule.min_contrast_hu:
        return
    sign = np.sign(contrast)
    smooth = ndimage.gaussian_filter(hu[box].astype(np.float32), rule.sigma_mm / spacing)
    like_lesion = ((smooth - reference_hu) * sign >= rule.midpoint * abs(contrast)) \
        & ((smooth - lesion_hu) * sign <= rule.max_beyond_hu)
    region = out[box]
    shell = organ[box] & (region != VESSEL) & (region != TUMOR) & within_mm(lesion, spacing, rule.reach_mm)
    grown = cc3d.connected_components(((like_lesion & shell) | lesion).astype(np.uint8), connectivity=6)
    seeds = np.unique(grown[lesion])
    added = np.isin(grown, seeds[seeds > 0]) & (region != TUMOR)
    gained = np.count_nonzero(added)
    if gained > rule.max_growth * count:
        return  # a leak along a vein or into a neighbouring organ, not the lesion's own tissue
    if gained < rule.min_shell_fill * np.count_nonzero(shell):
        return  # a patchy rim (perilesional parenchyma, partial volume): the contour is at the edge
    region[added] = TUMOR
