"""Per-lesion measurements in physical space: volume, centroid, HU, RECIST/WHO axial diameters,
maximum 3-D (Feret) diameter.

A lesion is a 26-connected component of label 3 (tumor). Lesions are numbered from 1 in order of
decreasing volume. Every length is in millimetres in patient space, so results do not depend
on how the same anatomy is stored (orientation, origin, voxel order).

Boundaries are taken at the mid-points between inside and outside voxel centres (the vertices
of a marching-cubes / marching-squares surface of the binary mask at 0.5), which removes the
one-voxel under-estimate of centre-to-centre measurements.

Axial = the patient's axial plane (normal = the superior axis in patient space), not the array's
third axis: the lesion is looked at through an image whose direction is the identity (LPS);
for permuted/flipped grids this is an exact axis permutation (``DICOMOrient``), for oblique
(gantry-tilted) grids the lesion is resampled onto an axial grid for the 2-D measurement only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.spatial import ConvexHull, QhullError

from ..core.labels import TUMOR

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


@dataclass
class Grid:
    """Physical geometry of an image: index (i, j, k) -> patient LPS mm."""

    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @classmethod
    def of(cls, image: sitk.Image) -> "Grid":
        return cls(np.asarray(image.GetSpacing(), float), np.asarray(image.GetOrigin(), float),
                   np.asarray(image.GetDirection(), float).reshape(3, 3))

    @property
    def matrix(self) -> np.ndarray:
        return self.direction * self.spacing[None, :]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def to_lps(self, ijk: np.ndarray) -> np.ndarray:
        return self.origin + np.asarray(ijk, float) @ self.matrix.T

    def is_axis_aligned(self, tol: float = 1e-4) -> bool:
        """True when the direction is a signed permutation (no obliquity)."""
        return bool(np.all(np.sum(np.abs(self.direction) > 1 - tol, axis=0) == 1))


def to_ras(p) -> List[float]:
    return (np.asarray(p, float) * LPS_TO_RAS).tolist()


# ----------------------------------------------------------------------------- components
@dataclass(frozen=True)
class LesionComponent:
    """One lesion as found in a label map: its component number in the labelling, the bounding
    box (array slices, numpy order), its voxel count and one voxel inside it (numpy order)."""

    component: int
    box: Tuple[slice, slice, slice]
    voxels: int
    seed_zyx: Tuple[int, int, int]


def _tumor_components(labels: np.ndarray):
    """One 26-connected labelling of label 3 and its per-component statistics (one pass), both
    computed on the tumor voxels' bounding box only and given in whole-grid indices (the
    background entry 0 has its whole-grid voxel count; its centroid and box are the crop's)."""
    tumor = np.asarray(labels) == TUMOR
    box = mask_box(tumor)
    if box is None:
        cc = np.zeros(tumor.shape, np.uint16)
        return cc, cc3d.statistics(cc)
    crop = cc3d.connected_components(tumor[box], connectivity=26)
    cc = np.zeros(tumor.shape, crop.dtype)
    cc[box] = crop
    stats = cc3d.statistics(crop)
    stats["voxel_counts"][0] += tumor.size - crop.size  # background outside the box too
    lo = np.array([s.start for s in box], float)
    stats["centroids"] = np.asarray(stats["centroids"], float) + lo
    stats["bounding_boxes"] = [tuple(slice(s.start + b.start, s.stop + b.start) for s, b in zip(bb, box))
                               for bb in stats["bounding_boxes"]]
    return cc, stats


def mask_box(mask: np.ndarray):
    """Numpy slices of the smallest box holding ``mask``'s voxels (None when empty): one
    projection per axis, no index list of the voxels."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _seed(cc: np.ndarray, box, comp: int) -> Tuple[int, int, int]:
    first = np.argwhere(cc[box] == comp)[0]
    return tuple(int(v + s.start) for v, s in zip(first, box))


def find_lesions(labels: np.ndarray, grid: Grid) -> Tuple[np.ndarray, List[LesionComponent]]:
    """The lesions of a label map, in lesion-id order: 26-connected components of label 3, by
    decreasing volume; ties (equal voxel counts) broken by the centroid's patient coordinates so
    that the order does not depend on voxel order. Returns (component map, lesions); lesion id
    ``n`` is ``lesions[n - 1]``. One labelling and one statistics pass (cc3d)."""
    cc, stats = _tumor_components(labels)
    counts = stats["voxel_counts"]
    keys = {}
    for comp in range(1, len(counts)):
        if counts[comp] > 0:
            lps = grid.to_lps(np.asarray(stats["centroids"][comp], float)[::-1])
            keys[comp] = (-int(counts[comp]), *np.round(lps, 3).tolist())
    order = sorted(keys, key=keys.__getitem__)
    boxes = stats["bounding_boxes"]
    return cc, [LesionComponent(c, tuple(boxes[c]), int(counts[c]), _seed(cc, tuple(boxes[c]), c))
                for c in order]


def lesion_masks(labels: np.ndarray, lesions: Sequence[dict]) -> Dict[int, Tuple[tuple, np.ndarray]]:
    """The one lesion identity: each analysed lesion's voxels, found from its own record.

    ``lesions`` are the analysis's lesion records (``measurements.json``); each names a voxel of
    the lesion (``seed_ijk``, ITK index order). Returns {lesion id: (box slices, boolean crop of
    the tumor component holding that voxel)} — no "order equals id" assumption, so a lesion
    deleted in Segment Editor is simply absent, and a renumbered list still finds its own voxels.
    """
    cc, stats = _tumor_components(labels)
    out = {}
    for les in lesions:
        seed = les.get("seed_ijk")
        if seed is None:
            continue
        zyx = tuple(int(v) for v in reversed(seed))
        if not all(0 <= v < n for v, n in zip(zyx, cc.shape)):
            continue
        comp = int(cc[zyx])
        if comp == 0:  # the lesion's voxel is no longer tumor (edited away)
            continue
        box = tuple(stats["bounding_boxes"][comp])
        out[int(les["id"])] = (box, cc[box] == comp)
    return out


def full_mask(shape, box, crop: np.ndarray) -> np.ndarray:
    """A crop mask placed back into a volume of ``shape``."""
    mask = np.zeros(shape, bool)
    mask[box] = crop
    return mask


# ----------------------------------------------------------------------------- boundaries
def boundary_points(mask: np.ndarray) -> np.ndarray:
    """Mid-points between inside and outside voxel centres, as continuous array indices in
    numpy order (..., axis0, axis1[, axis2]) of ``mask``; works in 2-D and 3-D."""
    padded = np.pad(mask.astype(bool), 1)
    out = []
    for axis in range(padded.ndim):
        a = np.take(padded, range(padded.shape[axis] - 1), axis=axis)
        b = np.take(padded, range(1, padded.shape[axis]), axis=axis)
        idx = np.argwhere(a != b).astype(float)
        idx[:, axis] += 0.5
        out.append(idx)
    return np.concatenate(out) - 1.0


def _hull_vertices(points: np.ndarray) -> np.ndarray:
    if len(points) <= 3:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # flat/degenerate: keep the extreme points per axis
        keep = set()
        for axis in range(points.shape[1]):
            keep.update((int(points[:, axis].argmin()), int(points[:, axis].argmax())))
        proj = points @ np.random.default_rng(0).standard_normal((points.shape[1], 64))
        keep.update(proj.argmin(0).tolist() + proj.argmax(0).tolist())
        return points[sorted(keep)]


def farthest_pair(points: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """Largest distance between two points (Feret diameter), using the convex hull."""
    hull = _hull_vertices(np.asarray(points, float))
    if len(hull) < 2:
        p = hull[0] if len(hull) else np.zeros(points.shape[1])
        return 0.0, p, p
    best, pair = -1.0, (0, 0)
    for start in range(0, len(hull), 512):
        block = hull[start:start + 512]
        d2 = ((block[:, None, :] - hull[None, :, :]) ** 2).sum(-1)
        flat = int(d2.argmax())
        i, j = divmod(flat, d2.shape[1])
        if d2[i, j] > best:
            best, pair = float(d2[i, j]), (start + i, j)
    return float(np.sqrt(best)), hull[pair[0]], hull[pair[1]]


# ----------------------------------------------------------------------------- axial view
def axial_reference(image: sitk.Image) -> Optional[sitk.Image]:
    """An axial (identity-direction) grid covering ``image`` when it is oblique, else None."""
    grid = Grid.of(image)
    if grid.is_axis_aligned():
        return None
    size = np.asarray(image.GetSize())
    corners = np.array([[a, b, c] for a in (0, size[0] - 1) for b in (0, size[1] - 1)
                        for c in (0, size[2] - 1)], float)
    lps = grid.to_lps(corners)
    s_axis = int(np.argmax(np.abs(grid.direction[2])))  # array axis closest to superior
    inplane = float(min(np.delete(grid.spacing, s_axis)))
    spacing = np.array([inplane, inplane, grid.spacing[s_axis]])
    lo, hi = lps.min(0), lps.max(0)
    n = np.maximum(np.ceil((hi - lo) / spacing).astype(int) + 1, 1)
    ref = sitk.Image([int(v) for v in n], sitk.sitkUInt8)
    ref.SetSpacing(tuple(spacing))
    ref.SetOrigin(tuple(lo))
    return ref


def to_axial(image: sitk.Image, interpolator=sitk.sitkNearestNeighbor,
             default: float = 0.0) -> sitk.Image:
    """``image`` on an identity-direction (LPS) grid: array [z, y, x] = [S, P, L] ascending."""
    ref = axial_reference(image)
    if ref is None:
        return sitk.DICOMOrient(image, "LPS")
    return sitk.Resample(image, ref, sitk.Transform(), interpolator, default, image.GetPixelID())


def crop_image(image: sitk.Image, sl: Sequence[slice]) -> sitk.Image:
    """Crop by numpy slices (k, j, i), keeping the physical geometry."""
    lo = [int(s.start) for s in sl][::-1]
    size = [int(s.stop - s.start) for s in sl][::-1]
    return sitk.RegionOfInterest(image, size, lo)


def expand_slices(sl: Sequence[slice], shape, margin: Sequence[int]) -> Tuple[slice, ...]:
    return tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, n, m in zip(sl, shape, margin))


# ----------------------------------------------------------------------------- diameters
def _contours(mask2d: np.ndarray, grid: "Grid") -> List[np.ndarray]:
    """Marching-squares outlines (level 0.5) of a 2-D mask [y, x] as (x, y) mm polygons."""
    import contourpy

    padded = np.pad(mask2d.astype(np.float64), 1)
    gen = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    return [(line - 1.0) * grid.spacing[:2] + grid.origin[:2] for line in gen.lines(0.5)]


def _longest_perpendicular_chord(polygons, p0, u, v):
    """Longest segment inside the outline(s) along a line perpendicular to ``u`` (i.e. parallel
    to ``v``); returns its position along u and its two ends along v (even-odd rule, so
    concavities and holes are respected). The chord length is piecewise linear in the line's
    position, so its maximum lies at a vertex position (tested just either side of it)."""
    edges_a = np.concatenate([poly[:-1] for poly in polygons]) - p0
    edges_b = np.concatenate([poly[1:] for poly in polygons]) - p0
    ua, va, ub, vb = edges_a @ u, edges_a @ v, edges_b @ u, edges_b @ v
    eps = 1e-6 * max(1.0, float(np.ptp(np.r_[ua, ub])))
    best = (-1.0, 0.0, 0.0, 0.0)
    candidates = np.unique(np.r_[ua - eps, ua + eps])
    for start in range(0, len(candidates), 256):
        c = candidates[start:start + 256, None]
        cross = (ua[None] - c) * (ub[None] - c) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            vv = va[None] + (c - ua[None]) / (ub - ua)[None] * (vb - va)[None]
        vv = np.sort(np.where(cross, vv, np.nan), axis=1)
        lo, hi = vv[:, 0::2], vv[:, 1::2]
        n = min(lo.shape[1], hi.shape[1])
        lengths = np.nan_to_num(hi[:, :n] - lo[:, :n], nan=-1.0)
        if lengths.size == 0:
            continue
        r, k = np.unravel_index(int(np.argmax(lengths)), lengths.shape)
        if lengths[r, k] > best[0]:
            best = (float(lengths[r, k]), float(c[r, 0]), float(lo[r, k]), float(hi[r, k]))
    return best[1], best[2], best[3]


def _axial_measure(mask_axial: np.ndarray, grid: Grid) -> Dict:
    """RECIST/WHO: longest diameter over the axial slices, and the longest chord perpendicular
    to it in the same slice. ``mask_axial`` is [z, y, x] on an identity-direction grid."""
    best = None
    for z in np.flatnonzero(mask_axial.reshape(mask_axial.shape[0], -1).any(1)):
        sl = mask_axial[z]
        pts = boundary_points(sl)[:, ::-1] * grid.spacing[:2] + grid.origin[:2]  # (x, y) mm
        length, p0, p1 = farthest_pair(pts)
        key = (round(length, 6), int(sl.sum()))
        if best is None or key > best[0]:
            best = (key, z, pts, p0, p1)
    (length, _), z, pts, p0, p1 = best
    zmm = float(grid.origin[2] + z * grid.spacing[2])
    if length <= 0:
        q0 = q1 = p0
        short = 0.0
    else:
        u = (p1 - p0) / length
        v = np.array([-u[1], u[0]])
        polygons = _contours(mask_axial[z], grid)
        uc, v0, v1 = _longest_perpendicular_chord(polygons, p0, u, v)
        short = float(v1 - v0)
        q0, q1 = p0 + uc * u + v0 * v, p0 + uc * u + v1 * v
    lift = lambda p: np.array([p[0], p[1], zmm])  # noqa: E731
    return {"longest_axial_mm": float(length), "short_axis_mm": short, "slice_z_lps": zmm,
            "slice_index_axial": int(z),
            "long_lps": [lift(p0), lift(p1)], "short_lps": [lift(q0), lift(q1)]}


def measure_lesion(cc_crop: np.ndarray, comp: int, ct_crop: np.ndarray, crop_img: sitk.Image) -> Dict:
    """Geometry and HU of one lesion given its crop (array + a sitk image carrying the crop's
    physical geometry)."""
    grid = Grid.of(crop_img)
    mask = cc_crop == comp
    idx = np.argwhere(mask)[:, ::-1]  # (i, j, k)
    lps = grid.to_lps(idx)
    hu = ct_crop[mask].astype(np.float64)
    surface = grid.to_lps(boundary_points(mask)[:, ::-1])
    feret, f0, f1 = farthest_pair(surface)
    mask_img = sitk.GetImageFromArray(mask.astype(np.uint8))
    mask_img.CopyInformation(crop_img)
    axial_img = to_axial(mask_img)
    axial = _axial_measure(sitk.GetArrayViewFromImage(axial_img) > 0, Grid.of(axial_img))
    return {
        "voxels": int(mask.sum()),
        "volume_ml": float(mask.sum()) * grid.voxel_ml,
        "centroid_lps": lps.mean(0),
        "mean_hu": float(hu.mean()), "std_hu": float(hu.std(ddof=1)) if hu.size > 1 else 0.0,
        "max_3d_mm": feret, "feret_lps": [f0, f1],
        **axial,
    }
