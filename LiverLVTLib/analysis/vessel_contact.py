"""Tumor-vessel contact: does a lesion touch hepatic vessel, over what area, and how wide is
the vessel there.

* contact: a vessel voxel (label 2) within one voxel (26-neighbourhood) of the lesion;
* contact area: the voxel faces shared by lesion and vessel voxels (mm^2);
* vessel diameter at the contact: twice the Euclidean distance transform (EDT, in mm) of the
  vessel mask on its centerline (ridge of the EDT = local maxima in a 3x3x3 neighbourhood),
  taking the largest value among centerline points whose inscribed ball comes within
  ``NEAR_MM`` of the contact. The EDT is computed on an isotropic (finest-spacing) resampling of
  the vessels within ``MARGIN_MM`` of the contact, so thick slices do not quantise it. Lesion voxels count as vessel for the EDT (the tumor does not
  narrow the vessel it abuts). 2 x EDT is used as is (see the note where it is computed).

A CT finding of contact is not proof of invasion.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from ..core.labels import VESSEL
from ..core.preprocess import resampled_grid
from .lesions import Grid

NEAR_MM = 3.0  # "within a few mm of the contact"
MARGIN_MM = 18.0  # crop margin around a lesion: covers vessels up to ~30 mm wide
MAX_FINE_VOXELS = 6e6  # cap on the isotropic crop (coarser when larger)


def _face_contact_area(lesion: np.ndarray, vessel: np.ndarray, spacing_kji) -> float:
    area = 0.0
    faces = (spacing_kji[1] * spacing_kji[2], spacing_kji[0] * spacing_kji[2],
             spacing_kji[0] * spacing_kji[1])
    for axis in range(3):
        n = lesion.shape[axis]
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(0, n - 1), slice(1, n)
        pairs = (lesion[tuple(a)] & vessel[tuple(b)]) | (vessel[tuple(a)] & lesion[tuple(b)])
        area += float(pairs.sum()) * faces[axis]
    return area


def _isotropic(vessel: np.ndarray, lesion: np.ndarray, grid: Grid, offset) -> Tuple:
    """Vessel and vessel-or-lesion masks (float) linearly resampled onto an isotropic grid over
    the crop, so that the EDT is not quantised by thick slices."""
    iso = max(float(grid.spacing.min()), 0.4)
    extent = np.asarray(vessel.shape[::-1]) * grid.spacing
    while np.prod(np.ceil(extent / iso)) > MAX_FINE_VOXELS:
        iso *= 1.25
    origin = grid.to_lps(np.asarray(offset[::-1], float))
    images = []
    for arr in (vessel, vessel | lesion):
        img = sitk.GetImageFromArray(arr.astype(np.float32))
        img.SetSpacing(tuple(grid.spacing))
        img.SetOrigin(tuple(origin))
        img.SetDirection(tuple(grid.direction.ravel()))
        ref = resampled_grid(img, (iso, iso, iso))
        images.append(sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                                    sitk.sitkFloat32))
    return images, iso


def _distance_to_outside(mask: np.ndarray, iso: float) -> np.ndarray:
    """Euclidean distance (mm, float32) from each voxel of ``mask`` to the nearest voxel centre
    outside it -- what ``scipy.ndimage.distance_transform_edt(mask, sampling=iso)`` gives, by
    Maurer's exact algorithm (SimpleITK) with the outside as the object: squared distances in
    voxels (exact integers in float32), then the root in mm; several times faster."""
    outside = sitk.GetImageFromArray((~mask).astype(np.uint8))
    outside.SetSpacing((iso, iso, iso))
    distance = sitk.SignedMaurerDistanceMap(outside, insideIsPositive=False, squaredDistance=True,
                                            useImageSpacing=False, backgroundValue=0)
    squared = np.maximum(sitk.GetArrayViewFromImage(distance), 0.0)  # in voxels^2: integers
    return np.sqrt(np.rint(squared)) * iso


def vessel_contact(comp_mask: np.ndarray, labels: np.ndarray, grid, bbox) -> Dict:
    """Contact of one lesion (``comp_mask`` over the whole grid restricted to ``bbox`` slices,
    i.e. arrays of the bbox shape) with label-2 vessels. ``labels`` is the full label array and
    ``bbox`` the lesion's numpy slices; ``grid`` a :class:`lesions.Grid`."""
    spacing_kji = grid.spacing[::-1]
    margin = [int(np.ceil(MARGIN_MM / s)) for s in spacing_kji]
    big = tuple(slice(max(0, s.start - m), min(n, s.stop + m))
                for s, n, m in zip(bbox, labels.shape, margin))
    lesion = np.zeros([s.stop - s.start for s in big], bool)
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(bbox, big))
    lesion[inner] = comp_mask
    vessel = labels[big] == VESSEL
    near = ndimage.binary_dilation(lesion, structure=np.ones((3, 3, 3), bool))
    contact = vessel & near
    result = {"in_contact": bool(contact.any()), "contact_area_mm2": 0.0,
              "max_vessel_diameter_mm": None, "contact_voxels": int(contact.sum())}
    if not contact.any():
        return result
    result["contact_area_mm2"] = _face_contact_area(lesion, vessel, spacing_kji)
    contact_idx = np.argwhere(contact)
    # the vessel diameter only needs the vessels around the contact: the crop's part within
    # MARGIN_MM of the contact's box (a large lesion touches a vessel on a small patch)
    near_box = tuple(slice(max(0, int(lo) - m), min(n, int(hi) + 1 + m)) for lo, hi, n, m in
                     zip(contact_idx.min(0), contact_idx.max(0), contact.shape, margin))
    offset = np.array([s.start for s in big]) + [s.start for s in near_box]
    contact_pts = grid.origin + (contact_idx + [s.start for s in big])[:, ::-1] @ grid.matrix.T
    fine, iso = _isotropic(vessel[near_box], lesion[near_box], grid, offset)
    fine_vessel = sitk.GetArrayViewFromImage(fine[0]) >= 0.5
    fine_either = sitk.GetArrayViewFromImage(fine[1]) >= 0.5
    # Distance to the nearest voxel that is neither vessel nor this lesion: the lesion does not
    # indent the vessel it abuts (it may even overlap the drawn wall by a voxel).
    edt = np.where(fine_vessel, _distance_to_outside(fine_either | fine_vessel, iso), 0.0)
    ridge = fine_vessel & (ndimage.maximum_filter(edt, size=3) <= edt)
    fgrid = Grid.of(fine[0])
    ridge_idx = np.argwhere(ridge)
    if len(ridge_idx) == 0:
        return result
    ridge_pts = fgrid.to_lps(ridge_idx[:, ::-1].astype(float))
    radius = edt[ridge]
    dist, _ = cKDTree(contact_pts).query(ridge_pts)
    reach = dist - radius <= NEAR_MM  # the inscribed ball there comes near the contact
    if not reach.any():
        reach = dist <= dist.min() + NEAR_MM
    k = int(np.argmax(np.where(reach, radius, -1)))
    # No half-voxel correction: the EDT reaches the nearest outside voxel centre (beyond the
    # wall) but starts from a ridge voxel that is itself off the true axis; on tubes of known
    # diameter (3-12 mm, 0.6-3 mm voxels) the two cancel to within about +-0.5 mm.
    diameter = max(2.0 * float(radius[k]), iso)
    where = ridge_pts[k]
    result["max_vessel_diameter_mm"] = diameter
    result["diameter_at_lps"] = where.tolist()
    return result
