"""Grid and intensity preprocessing shared by inference and training.

The network always sees the CT in one canonical orientation (LPS: array axes [z, y, x] run
inferior->superior, anterior->posterior, right->left... exactly ITK's identity direction) at the
model card's isotropic-or-not target spacing, so that a CT stored as LPS, RAS, LAI, ... looks
the same to it. Labels go back to the CT's own grid by physical-space resampling.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import SimpleITK as sitk

CANONICAL_ORIENTATION = "LPS"  # ITK's identity direction


def canonical(image: sitk.Image) -> sitk.Image:
    """Permute/flip axes (no interpolation) so the direction is the identity (LPS)."""
    return sitk.DICOMOrient(image, CANONICAL_ORIENTATION)


def resampled_grid(image: sitk.Image, spacing: Sequence[float]) -> sitk.Image:
    """An empty reference image covering ``image``'s extent at ``spacing`` (same direction)."""
    old_spacing = np.asarray(image.GetSpacing(), float)
    new_spacing = np.asarray(spacing, float)
    size = np.maximum(1, np.round(np.asarray(image.GetSize()) * old_spacing / new_spacing)).astype(int)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    # keep the outer voxel edges where they were: shift the first voxel centre by half the change
    origin = np.asarray(image.GetOrigin(), float) + direction @ ((new_spacing - old_spacing) / 2)
    reference = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    reference.SetSpacing(tuple(new_spacing))
    reference.SetOrigin(tuple(origin))
    reference.SetDirection(image.GetDirection())
    return reference


def resample(image: sitk.Image, reference: sitk.Image, interpolator=sitk.sitkLinear,
             default: float = -1024.0, pixel_type=None) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid in physical space."""
    pixel_type = image.GetPixelID() if pixel_type is None else pixel_type
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, default, pixel_type)


def to_model_grid(ct: sitk.Image, spacing: Sequence[float]) -> sitk.Image:
    """CT (any orientation/spacing) -> canonical orientation at the model spacing (linear)."""
    oriented = canonical(ct)
    return resample(oriented, resampled_grid(oriented, spacing), sitk.sitkLinear, -1024.0)


def labels_to_grid(labels: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Label map -> ``reference``'s grid with nearest-neighbour interpolation (uint8)."""
    return resample(labels, reference, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def normalize(hu: np.ndarray, window: Tuple[float, float]) -> np.ndarray:
    """Clip HU to the model's intensity window and scale it to [0, 1] (float32)."""
    low, high = float(window[0]), float(window[1])
    out = (np.asarray(hu, np.float32) - low) / (high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def bounding_box(mask: np.ndarray, margin_vox: Sequence[int] = (0, 0, 0)):
    """Index box (lo, hi) of a non-empty mask [z, y, x], grown by a margin, clipped to the array.
    Returns None for an empty mask."""
    coords = np.nonzero(mask)
    if not coords[0].size:
        return None
    lo = [max(0, int(c.min()) - m) for c, m in zip(coords, margin_vox)]
    hi = [min(n, int(c.max()) + 1 + m) for c, n, m in zip(coords, mask.shape, margin_vox)]
    return tuple(lo), tuple(hi)


def crop(image: sitk.Image, lo_zyx: Sequence[int], hi_zyx: Sequence[int]) -> sitk.Image:
    """Crop an image by an array-index box [z, y, x] (keeps physical placement)."""
    lo = [int(v) for v in reversed(lo_zyx)]
    size = [int(b - a) for a, b in zip(reversed(lo_zyx), reversed(hi_zyx))]
    return sitk.RegionOfInterest(image, size, lo)
