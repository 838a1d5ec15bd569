"""Phase partners: a CT-only phase of a study labelled from its labelled partner phase.

Two phases of one study (e.g. arterial and equilibrium, minutes apart on one table) share a frame
of reference: the labelled phase's labels, resampled by nearest neighbour in physical space, label
the other phase up to breathing. Checked on the body outline (HU > -300) of the labelled liver's
slices, which a moved patient or another table position would shift (shared pairs: Dice
0.96-0.99).

Breathing moves the liver between the phases by millimetres to a centimetre (liver Dice of the
moved labels against a cross-validation model's liver on the CT-only phase: 0.89-0.91), enough to
put a 1 mL tumor's label beside the tumor. ``register=True`` first aligns the labelled phase onto
the CT-only one inside the liver: a translation, then a B-spline (Mattes mutual information, as
the two phases differ in contrast; SimpleITK), restricted to the moved liver grown by
:data:`LIVER_MARGIN_MM`. A moved tumor label is then taught only where the CT-only phase shows the
tumor: :func:`tumor_contrasts` reads each lesion against its parenchyma ring, and
:func:`tumors_visible` asks for :data:`MIN_VISIBLE_HU` in every lesion (an HCC often reads like
liver in the equilibrium phase when it shows no washout; LI-RADS v2018 makes washout a major
feature, not a constant one). A tumor label on an invisible tumor would teach the tumor channel to
fire on plain parenchyma.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..core.labels import LIVER, TUMOR

PARTNER_BODY_DICE_MIN = 0.95
LIVER_MARGIN_MM = 15.0   # the registration's region: the moved liver grown by this
REGISTRATION_SEED = 7    # Mattes MI samples voxels at random: fixed for a reproducible cache
MIN_VISIBLE_HU = 8.0     # |lesion mean - parenchyma ring mean| for a moved tumor label to count
RING_MM = 5.0            # the parenchyma ring around a lesion


def transfer_partner_labels(ct, partner_ct, partner_labels, register: bool = False):
    """The partner's labels on ``ct``'s grid (aligned inside the liver first with ``register``),
    or None when the two bodies do not overlap there (or the partner's liver lies outside ``ct``)."""
    import SimpleITK as sitk

    labels = sitk.Resample(partner_labels, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    slab = sitk.GetArrayViewFromImage(labels).any(axis=(1, 2))
    if not slab.any():
        return None
    moved = sitk.Resample(partner_ct, ct, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    a = sitk.GetArrayViewFromImage(ct)[slab] > -300
    b = sitk.GetArrayViewFromImage(moved)[slab] > -300
    dice = 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))
    if dice < PARTNER_BODY_DICE_MIN:
        return None
    if not register:
        return labels
    transform = register_partner(ct, partner_ct, labels)
    return sitk.Resample(partner_labels, ct, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _method(mask, seed: int):
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.2, seed)
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel([4, 2])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def register_partner(ct, partner_ct, moved_labels):
    """Transform from ``ct``'s space into ``partner_ct``'s (what ``sitk.Resample`` of the partner
    onto ``ct`` takes): translation then a B-spline with a control point about every 50 mm, over
    the box of ``moved_labels``' liver (already on ``ct``'s grid) grown by LIVER_MARGIN_MM."""
    import SimpleITK as sitk

    liver = sitk.Cast(moved_labels >= LIVER, sitk.sitkUInt8)
    distance = sitk.SignedMaurerDistanceMap(liver, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    region = sitk.Cast(distance <= LIVER_MARGIN_MM, sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(region)
    box = stats.GetBoundingBox(1)
    fixed = sitk.RegionOfInterest(ct, box[3:], box[:3])
    mask = sitk.RegionOfInterest(region, box[3:], box[:3])
    fixed = sitk.Clamp(sitk.Cast(fixed, sitk.sitkFloat32), sitk.sitkFloat32, -200.0, 400.0)
    moving = sitk.Clamp(sitk.Cast(partner_ct, sitk.sitkFloat32), sitk.sitkFloat32, -200.0, 400.0)

    shift = _method(mask, REGISTRATION_SEED)
    shift.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=200)
    shift.SetOptimizerScalesFromPhysicalShift()
    shift.SetInitialTransform(sitk.TranslationTransform(3), inPlace=False)
    translation = shift.Execute(fixed, moving)

    extent = [n * s for n, s in zip(fixed.GetSize(), fixed.GetSpacing())]
    mesh = [max(2, int(round(e / 50.0))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh)
    warp = _method(mask, REGISTRATION_SEED)
    warp.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=60)
    warp.SetMovingInitialTransform(translation)
    warp.SetInitialTransform(bspline, inPlace=True)
    warp.Execute(fixed, moving)
    return sitk.CompositeTransform([translation, bspline])


def tumor_contrasts(ct, labels) -> List[float]:
    """Per liver tumor of ``labels`` (26-connected components, on ``ct``'s grid): its mean HU
    minus the mean of the tumor-free parenchyma within RING_MM around it (nan without a ring)."""
    import cc3d
    import SimpleITK as sitk
    from scipy import ndimage

    hu = sitk.GetArrayViewFromImage(ct)
    lab = sitk.GetArrayViewFromImage(labels)
    parenchyma = lab == LIVER
    cc, n = cc3d.connected_components((lab == TUMOR).astype(np.uint8), connectivity=26, return_N=True)
    reach = [max(1, int(round(RING_MM / s))) for s in reversed(ct.GetSpacing())]
    out = []
    for index, box in enumerate(ndimage.find_objects(cc), start=1):
        grown = tuple(slice(max(0, b.start - r), b.stop + r) for b, r in zip(box, reach))
        lesion = cc[grown] == index
        ring = ndimage.binary_dilation(lesion, np.ones([2 * r + 1 for r in reach], bool)) & ~lesion
        ring &= parenchyma[grown]
        values = hu[grown]
        out.append(float(values[lesion].mean() - values[ring].mean()) if ring.any() else float("nan"))
    return out


def tumors_visible(contrasts: List[float], min_hu: float = MIN_VISIBLE_HU) -> Optional[bool]:
    """True when every tumor reads at least ``min_hu`` off its parenchyma ring (``contrasts``:
    :func:`tumor_contrasts`; False when one does not, None when there is no tumor)."""
    if not contrasts:
        return None
    return all(abs(c) >= min_hu for c in contrasts)
