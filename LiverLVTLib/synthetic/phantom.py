"""A synthetic contrast CT of the upper abdomen with exact ground truth (the built-in phantom).

``make_phantom()`` draws a portal-venous-phase abdomen: body fat, abdominal wall muscle,
spine and ribs, lung bases, an organ-shaped liver (~1.5 L) in the right upper quadrant with a
portal and hepatic vein tree of known diameters (12 mm trunk down to 3 mm branches), the IVC,
aorta, spleen, kidneys, stomach (air-fluid level), gallbladder, pancreas and bowel loops, with
hypodense tumors and a water-density cyst. Partial-volume blur and correlated noise are added.
The label map on the same grid is exact: 0 background, 1 liver parenchyma, 2 hepatic vessel
(inside the liver), 3 lesion (tumors *and* cysts: a focal liver lesion; the analysis triages).

Geometry
--------
All anatomy is defined in millimetres in **patient LPS** coordinates (ITK's physical space:
+x toward the patient's Left, +y Posterior, +z Superior), body axis centred at x = y = 0.
The same anatomy can therefore be rendered on grids of any orientation / spacing and compared.

``orientation`` names, for each array axis (i, j, k) in ITK order, the patient direction toward
which the index grows (DICOM/ITK "LPS" = identity direction, NIfTI-like "RAS" = diag(-1,-1,1)).
``spacing`` is per array axis. ``tilt_deg`` adds a gantry tilt (rotation about the left-right
axis), giving an oblique direction matrix whose axial plane is not an array plane.

Exact values are in ``Phantom.truth`` (analytic diameters/volumes of the shapes, plus voxel
counts of the labels actually drawn, which is the truth a label-based measurement must meet).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

Vec3 = Tuple[float, float, float]

AXIS_VECTORS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0),
                "S": (0, 0, 1), "I": (0, 0, -1)}

# Portal-venous phase attenuation (HU), typical literature values.
HU = {
    "air": -1000.0, "lung": -860.0, "fat": -100.0, "visceral_fat": -90.0, "muscle": 50.0,
    "liver": 100.0, "vessel": 180.0, "aorta": 150.0, "ivc": 140.0, "spleen": 115.0,
    "kidney_cortex": 170.0, "kidney_sinus": -60.0, "renal_pelvis": 10.0, "stomach_wall": 70.0,
    "stomach_fluid": 12.0, "gallbladder": 8.0, "pancreas": 90.0, "bowel_wall": 60.0,
    "bowel_content": 25.0, "bone_marrow": 250.0, "bone_cortex": 800.0, "csf": 15.0,
    "tumor": 50.0, "cyst": 5.0,
}


@dataclass
class Vessel:
    """A straight vessel segment (a capsule: all points within diameter/2 of the segment).

    ``start``/``end`` in patient LPS mm. ``kind``: "portal", "hepatic" (drawn and labelled 2
    where inside the liver) or "other" (extrahepatic, never labelled).
    """

    start: Vec3
    end: Vec3
    diameter_mm: float
    name: str = ""
    kind: str = "portal"
    hu: float = HU["vessel"]


@dataclass
class Lesion:
    """An ellipsoidal focal liver lesion.

    ``center`` in patient LPS mm; ``diameters_mm`` are the full axis lengths along the patient
    L-R, A-P and S-I directions *before* a rotation of ``rotation_deg`` about the S-I axis (so the
    axial cross-section is an ellipse and the S-I extent is ``diameters_mm[2]``).
    ``kind``: "tumor" (hypodense, ~50 HU) or "cyst" (water, ~5 HU). ``texture_hu``: SD of a
    smooth internal heterogeneity added to the lesion (tumors are heterogeneous, cysts not).
    """

    center: Vec3
    diameters_mm: Vec3
    kind: str = "tumor"
    hu: Optional[float] = None
    rotation_deg: float = 0.0
    name: str = ""
    texture_hu: Optional[float] = None

    def semi_axes(self) -> np.ndarray:
        return np.asarray(self.diameters_mm, float) / 2.0

    def rotation(self) -> np.ndarray:
        t = math.radians(self.rotation_deg)
        c, s = math.cos(t), math.sin(t)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Phantom:
    ct: sitk.Image
    labels: sitk.Image
    truth: Dict
    lesions: List[Lesion] = field(default_factory=list)
    vessels: List[Vessel] = field(default_factory=list)


# ----------------------------------------------------------------------------- default anatomy
LIVER_RIGHT_LOBE = ((-72.0, 8.0, 25.0), (62.0, 80.0, 66.0), -10.0)  # centre, semi-axes, rot
LIVER_LEFT_LOBE = ((5.0, -42.0, 48.0), (52.0, 30.0, 32.0), 12.0)
HILUM = (-38.0, 2.0, 8.0)
RIGHT_PV = (-72.0, 8.0, 16.0)
LEFT_PV = (-2.0, -34.0, 38.0)
RIGHT_ANT_PV = (-88.0, -38.0, 34.0)
RIGHT_POST_PV = (-98.0, 42.0, 10.0)


def default_vessels() -> List[Vessel]:
    """Portal vein tree (12 mm trunk to 3 mm branches) and hepatic veins, in LPS mm."""
    return [
        Vessel((-8.0, 28.0, -32.0), HILUM, 12.0, "portal trunk", "portal"),
        Vessel((-8.0, 28.0, -32.0), (78.0, 48.0, -8.0), 8.0, "splenic vein", "other"),
        Vessel(HILUM, RIGHT_PV, 9.0, "right portal vein", "portal"),
        Vessel(HILUM, LEFT_PV, 7.0, "left portal vein", "portal"),
        Vessel(RIGHT_PV, RIGHT_ANT_PV, 6.0, "right anterior portal branch", "portal"),
        Vessel(RIGHT_PV, RIGHT_POST_PV, 6.0, "right posterior portal branch", "portal"),
        Vessel(RIGHT_ANT_PV, (-102.0, -52.0, 62.0), 4.0, "segment 8 branch", "portal"),
        Vessel(RIGHT_ANT_PV, (-72.0, -58.0, 4.0), 4.0, "segment 5 branch", "portal"),
        Vessel(RIGHT_POST_PV, (-112.0, 38.0, 48.0), 4.0, "segment 7 branch", "portal"),
        Vessel(RIGHT_POST_PV, (-100.0, 30.0, -22.0), 3.0, "segment 6 branch", "portal"),
        Vessel(LEFT_PV, (32.0, -46.0, 52.0), 4.0, "segment 2/3 branch", "portal"),
        Vessel(LEFT_PV, (-14.0, -58.0, 60.0), 3.0, "segment 4 branch", "portal"),
        Vessel((-22.0, 40.0, 76.0), (-112.0, 6.0, 44.0), 10.0, "right hepatic vein", "hepatic"),
        Vessel((-22.0, 36.0, 78.0), (-56.0, -48.0, 36.0), 8.0, "middle hepatic vein", "hepatic"),
        Vessel((-16.0, 32.0, 80.0), (18.0, -50.0, 66.0), 6.0, "left hepatic vein", "hepatic"),
    ]


def default_lesions() -> List[Lesion]:
    """Three hypodense tumors (one abutting a 3 mm branch) and one simple cyst, in LPS mm."""
    seg6 = next(v for v in default_vessels() if v.name == "segment 6 branch")
    return [
        Lesion((-106.0, 2.0, 0.0), (40.0, 32.0, 30.0), "tumor", 45.0, 25.0, "tumor A"),
        Lesion((-58.0, -30.0, 62.0), (24.0, 22.0, 20.0), "tumor", 55.0, 0.0, "tumor B"),
        # abuts the 3 mm segment 6 portal branch (surface 1 mm into the vessel wall)
        Lesion(beside_vessel(seg6, (20.0, 20.0, 20.0), 0.55, (-1.0, 0.0, 0.0)), (20.0, 20.0, 20.0),
               "tumor", 52.0, 0.0, "tumor C"),
        Lesion((-50.0, 58.0, 24.0), (18.0, 18.0, 18.0), "cyst", 5.0, 0.0, "cyst D"),
    ]


# ----------------------------------------------------------------------------- grid
def direction_from_orientation(orientation: str, tilt_deg: float = 0.0) -> np.ndarray:
    """3x3 direction matrix (columns = array axes i, j, k in LPS) for e.g. "LAI"."""
    code = orientation.upper()
    if len(code) != 3 or any(c not in AXIS_VECTORS for c in code):
        raise ValueError(f"orientation must be three letters from L/R, P/A, S/I, got {orientation!r}")
    cols = np.array([AXIS_VECTORS[c] for c in code], float).T
    if abs(round(abs(np.linalg.det(cols)))) != 1:
        raise ValueError(f"orientation {orientation!r} repeats an axis")
    if tilt_deg:
        t = math.radians(tilt_deg)  # gantry tilt: rotation about the patient L-R axis
        rot = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
        cols = rot @ cols
    return cols


class _Grid:
    """Voxel grid; physical coordinates of sub-blocks as broadcastable arrays (k, j, i order)."""

    def __init__(self, size, spacing, origin, direction):
        self.size = np.asarray(size, int)  # (ni, nj, nk)
        self.spacing = np.asarray(spacing, float)
        self.origin = np.asarray(origin, float)
        self.direction = np.asarray(direction, float)
        self.matrix = self.direction * self.spacing[None, :]  # index (i,j,k) -> LPS offset
        self.inverse = np.linalg.inv(self.matrix)
        self.shape = tuple(int(n) for n in self.size[::-1])  # numpy (k, j, i)

    def box(self, lo, hi):
        """Numpy slices (k, j, i) covering the LPS box [lo, hi], or None when outside."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)])
        idx = (corners - self.origin) @ self.inverse.T
        first = np.maximum(np.floor(idx.min(0)).astype(int) - 1, 0)
        last = np.minimum(np.ceil(idx.max(0)).astype(int) + 1, self.size - 1)
        if np.any(last < first):
            return None
        return tuple(slice(int(first[a]), int(last[a]) + 1) for a in (2, 1, 0))

    def coords(self, sl=None):
        """LPS x, y, z of the voxel centres in the sub-block ``sl`` (broadcastable arrays)."""
        if sl is None:
            sl = tuple(slice(0, n) for n in self.shape)
        ks = np.arange(sl[0].start, sl[0].stop, dtype=np.float32).reshape(-1, 1, 1)
        js = np.arange(sl[1].start, sl[1].stop, dtype=np.float32).reshape(1, -1, 1)
        is_ = np.arange(sl[2].start, sl[2].stop, dtype=np.float32).reshape(1, 1, -1)
        out = []
        for row in range(3):
            value = np.float32(self.origin[row])
            for coef, idx in zip(self.matrix[row], (is_, js, ks)):
                if abs(coef) > 1e-9:
                    value = value + np.float32(coef) * idx
            out.append(np.asarray(value, np.float32))
        return out

    def image(self, array: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction.ravel()))
        return img


# ----------------------------------------------------------------------------- shapes
# Each shape returns (slices, mask) on the grid: a boolean mask of the sub-block it covers.
def _ellipsoid_q(grid, center, semi, rot_deg=0.0, pad=0.0):
    c = np.asarray(center, float)
    semi = np.asarray(semi, float)
    reach = np.array([max(semi[0], semi[1]), max(semi[0], semi[1]), semi[2]]) + pad
    sl = grid.box(c - reach, c + reach)
    if sl is None:
        return None, None
    x, y, z = grid.coords(sl)
    dx, dy, dz = x - np.float32(c[0]), y - np.float32(c[1]), z - np.float32(c[2])
    if rot_deg:
        t = math.radians(rot_deg)
        u = dx * np.float32(math.cos(t)) + dy * np.float32(math.sin(t))
        v = -dx * np.float32(math.sin(t)) + dy * np.float32(math.cos(t))
    else:
        u, v = dx, dy
    q = (u / np.float32(semi[0])) ** 2 + (v / np.float32(semi[1])) ** 2 + (dz / np.float32(semi[2])) ** 2
    return sl, q


def _ellipsoid(grid, center, semi, rot_deg=0.0):
    sl, q = _ellipsoid_q(grid, center, semi, rot_deg)
    return sl, (None if q is None else q <= 1.0)


def _elliptic_cylinder(grid, center_xy, semi_xy, z_range):
    lo = (center_xy[0] - semi_xy[0], center_xy[1] - semi_xy[1], z_range[0])
    hi = (center_xy[0] + semi_xy[0], center_xy[1] + semi_xy[1], z_range[1])
    sl = grid.box(lo, hi)
    if sl is None:
        return None, None
    x, y, z = grid.coords(sl)
    q = ((x - np.float32(center_xy[0])) / np.float32(semi_xy[0])) ** 2 + \
        ((y - np.float32(center_xy[1])) / np.float32(semi_xy[1])) ** 2
    inside = (q <= 1.0) & (z >= z_range[0]) & (z <= z_range[1])
    return sl, np.broadcast_to(inside, tuple(s.stop - s.start for s in sl))


def segment_distance(points: np.ndarray, a, b) -> np.ndarray:
    """Distance (mm) from points (..., 3) to the segment a-b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[..., None] * ab), axis=-1)


def _capsule(grid, a, b, radius):
    a, b = np.asarray(a, float), np.asarray(b, float)
    sl = grid.box(np.minimum(a, b) - radius, np.maximum(a, b) + radius)
    if sl is None:
        return None, None
    x, y, z = grid.coords(sl)
    ab = (b - a).astype(np.float32)
    den = np.float32(max(float(ab @ ab), 1e-12))
    px, py, pz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
    t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / den, 0.0, 1.0)
    d2 = (px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2
    return sl, d2 <= np.float32(radius * radius)


def _paint(array, sl, mask, value):
    if sl is not None and mask is not None:
        block = array[sl]
        block[np.broadcast_to(mask, block.shape)] = value


# ----------------------------------------------------------------------------- truth helpers
def _ellipsoid_surface(lesion: Lesion, n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(1)
    u = rng.standard_normal((n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return (u * lesion.semi_axes()) @ lesion.rotation().T + np.asarray(lesion.center, float)


def lesion_truth(lesion: Lesion, vessels: Sequence[Vessel], contact_mm: float = 1.0) -> Dict:
    """Analytic measurements of an ellipsoidal lesion (rotated about S-I only)."""
    d = np.asarray(lesion.diameters_mm, float)
    axial = sorted(d[:2], reverse=True)
    surface = _ellipsoid_surface(lesion)
    contacts = []
    for v in vessels:
        if v.kind == "other":
            continue
        gap = float(segment_distance(surface, v.start, v.end).min() - v.diameter_mm / 2)
        if gap <= contact_mm:
            contacts.append((v.name, float(v.diameter_mm), round(gap, 2)))
    center = np.asarray(lesion.center, float)
    return {
        "name": lesion.name, "kind": lesion.kind,
        "center_lps": center.tolist(), "center_ras": (center * [-1, -1, 1]).tolist(),
        "diameters_mm": d.tolist(), "volume_ml": float(math.pi / 6 * np.prod(d) / 1000.0),
        "longest_axial_mm": float(axial[0]), "short_axis_mm": float(axial[1]),
        "max_3d_mm": float(d.max()), "hu": lesion.hu,
        "touches_vessel": bool(contacts),
        "contact_vessel_diameter_mm": max((c[1] for c in contacts), default=None),
        "contact_vessels": [{"name": c[0], "diameter_mm": c[1], "gap_mm": c[2]} for c in contacts],
    }


def beside_vessel(vessel: Vessel, diameters_mm: Vec3, t: float = 0.5,
                  toward: Vec3 = (0.0, 0.0, 1.0), overlap_mm: float = 1.0) -> Vec3:
    """Centre for a lesion whose surface overlaps ``vessel``'s wall by ``overlap_mm``.

    The lesion sits at fraction ``t`` along the vessel, offset perpendicular to it in the
    direction closest to ``toward``. Exact for spheres; for ellipsoids the semi-axis along that
    direction is used (axis-aligned offsets only).
    """
    a, b = np.asarray(vessel.start, float), np.asarray(vessel.end, float)
    axis = (b - a) / np.linalg.norm(b - a)
    w = np.asarray(toward, float)
    w = w - (w @ axis) * axis
    if np.linalg.norm(w) < 1e-6:
        raise ValueError("'toward' is parallel to the vessel")
    w /= np.linalg.norm(w)
    semi = np.asarray(diameters_mm, float) / 2
    reach = float(np.sqrt(np.sum((w / semi) ** 2)) ** -1)  # ellipsoid radius along w
    offset = reach + vessel.diameter_mm / 2 - overlap_mm
    return tuple(float(v) for v in (a + t * (b - a) + offset * w))


# ----------------------------------------------------------------------------- builder
def _make_grid(spacing, orientation, tilt_deg, size, fov_mm, center_mm) -> _Grid:
    direction = direction_from_orientation(orientation, tilt_deg)
    spacing = np.asarray(spacing, float)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    if size is None:
        # the FOV box (patient L-R, A-P, S-I) measured along each array axis
        extent = np.abs(direction.T) @ np.asarray(fov_mm, float)
        size = np.maximum(np.round(extent / spacing).astype(int), 2)
    size = np.asarray(size, int)
    half = direction @ (spacing * (size - 1) / 2.0)
    origin = np.asarray(center_mm, float) - half
    return _Grid(size, spacing, origin, direction)


def _smooth_noise(shape, rng, sd, sigma_vox):
    """Correlated noise with standard deviation ``sd`` (white noise through a Gaussian)."""
    if sd <= 0:
        return 0.0
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, sigma_vox, output=noise, truncate=2.5)
    impulse = np.zeros((9, 9, 9), np.float32)
    impulse[4, 4, 4] = 1
    gain = float(np.sqrt((ndimage.gaussian_filter(impulse, sigma_vox, truncate=2.5) ** 2).sum()))
    noise *= np.float32(sd / max(gain, 1e-6))
    return noise


def make_phantom(seed: int = 0, spacing: Sequence[float] = (0.8, 0.8, 2.5),
                 orientation: str = "LAI", size: Optional[Sequence[int]] = None,
                 lesions: Optional[Sequence[Lesion]] = None,
                 vessels: Optional[Sequence[Vessel]] = None, *,
                 fov_mm: Sequence[float] = (360.0, 300.0, 200.0),
                 center_mm: Sequence[float] = (0.0, 0.0, 10.0), tilt_deg: float = 0.0,
                 noise_hu: float = 12.0, blur: bool = True, liver_hu: float = HU["liver"],
                 neighbours: bool = True) -> Phantom:
    """Build the phantom CT (float32 HU) and its exact labels (uint8) on one grid.

    seed: bowel-loop layout and noise. spacing/orientation/tilt_deg/size/fov_mm/center_mm:
    the grid (``size`` in voxels per array axis overrides the LPS field of view ``fov_mm``
    centred at ``center_mm``). lesions/vessels: ``None`` gives the default realistic case,
    ``[]`` none. ``noise_hu``: noise SD; ``blur``: partial-volume blur (scanner PSF and slice
    profile); ``neighbours``: draw the organs around the liver (False: liver in fat only).
    """
    rng = np.random.default_rng(seed)
    grid = _make_grid(spacing, orientation, tilt_deg, size, fov_mm, center_mm)
    lesions = default_lesions() if lesions is None else list(lesions)
    vessels = default_vessels() if vessels is None else list(vessels)
    hu = np.full(grid.shape, HU["air"], np.float32)
    lab = np.zeros(grid.shape, np.uint8)
    full = tuple(slice(0, n) for n in grid.shape)
    zr = (-1e4, 1e4)

    # body wall: subcutaneous fat, abdominal muscle, visceral fat inside the peritoneal cavity
    _paint(hu, *_elliptic_cylinder(grid, (0, 5), (160, 122), zr), HU["fat"])
    _paint(hu, *_elliptic_cylinder(grid, (0, 5), (150, 112), zr), HU["muscle"])
    cav_sl, cavity = _elliptic_cylinder(grid, (0, 5), (140, 102), zr)
    _paint(hu, cav_sl, cavity, HU["visceral_fat"])
    liver_bg = np.zeros(grid.shape, bool)  # where the liver may not be
    if cav_sl is not None:
        liver_bg[...] = True
        liver_bg[cav_sl] &= ~np.broadcast_to(cavity, liver_bg[cav_sl].shape)

    def paint_organ(sl, mask, value, block_liver=True):
        _paint(hu, sl, mask, value)
        if block_liver and sl is not None and mask is not None:
            liver_bg[sl] |= np.broadcast_to(mask, liver_bg[sl].shape)

    if neighbours:
        # ribs: oblique bony bands in the wall (descend anteriorly), upper abdomen only
        x, y, z = grid.coords(full)
        ang = np.arctan2(np.float32(1.0) * (y - 5) / 112, x / np.float32(150))
        rad = np.sqrt((x / np.float32(145)) ** 2 + ((y - 5) / np.float32(107)) ** 2)
        wall = np.abs(rad - 1.0) < np.float32(0.03)
        lateral = np.cos(ang) ** 2 > 0.15  # not over the front/back midline
        band = np.mod(z + 40 * np.sin(ang) + 25 * np.cos(ang), 26.0) < 7.0  # posterior ribs higher than anterior
        ribs = wall & lateral & band & (z > -45 + 15 * np.abs(np.sin(ang)))
        hu[ribs] = HU["bone_cortex"] * 0.7
        del x, y, z, ang, rad, wall, lateral, band, ribs
        # spine: vertebral body (marrow + cortex), canal, posterior elements, paraspinal muscle
        for sx in (-36, 36):
            _paint(hu, *_elliptic_cylinder(grid, (sx, 98), (24, 20), zr), HU["muscle"])
        paint_organ(*_elliptic_cylinder(grid, (0, 66), (22, 20), zr), HU["bone_cortex"])
        _paint(hu, *_elliptic_cylinder(grid, (0, 66), (19, 17), zr), HU["bone_marrow"])
        sl, body = _elliptic_cylinder(grid, (0, 66), (22, 20), zr)
        if sl is not None:  # intervertebral discs every 32 mm
            _, _, z = grid.coords(sl)
            _paint(hu, sl, body & (np.mod(z, 32.0) < 7.0), HU["muscle"] + 30)
        _paint(hu, *_elliptic_cylinder(grid, (0, 96), (11, 9), zr), HU["bone_cortex"] * 0.8)
        _paint(hu, *_elliptic_cylinder(grid, (0, 95), (7, 6), zr), HU["csf"])
        _paint(hu, *_elliptic_cylinder(grid, (0, 114), (4, 9), zr), HU["bone_cortex"] * 0.8)
        for sx in (-34, 34):  # psoas, lower abdomen
            _paint(hu, *_elliptic_cylinder(grid, (sx, 60), (14, 14), (-1e4, -20)), HU["muscle"])
        # lung bases over the diaphragm (the liver is drawn over them: the dome)
        _paint(hu, *_ellipsoid(grid, (-78, 34, 172), (62, 84, 112)), HU["lung"])
        _paint(hu, *_ellipsoid(grid, (78, 34, 176), (60, 80, 108)), HU["lung"])
        # bowel loops (layout from the seed), pancreas
        for _ in range(9):
            c = (rng.uniform(-70, 80), rng.uniform(-75, 15), rng.uniform(-95, -40))
            semi = (rng.uniform(12, 22), rng.uniform(12, 22), rng.uniform(15, 30))
            rot = rng.uniform(0, 180)
            paint_organ(*_ellipsoid(grid, c, semi, rot), HU["bowel_wall"], False)
            inner = tuple(s - 3 for s in semi)
            _paint(hu, *_ellipsoid(grid, c, inner, rot), HU["bowel_content"])
            if rng.uniform() < 0.4:  # a gas bubble, non-dependent (anterior = -y when supine)
                _paint(hu, *_ellipsoid(grid, (c[0], c[1] - inner[1] * 0.6, c[2]),
                                       (inner[0] * 0.6, inner[1] * 0.35, inner[2] * 0.6), rot),
                       HU["air"])
        _paint(hu, *_ellipsoid(grid, (12, 8, -8), (55, 12, 13), 15), HU["pancreas"])
        # great vessels: aorta left-anterior of the spine, IVC right (retrohepatic groove)
        paint_organ(*_elliptic_cylinder(grid, (14, 40), (12, 12), zr), HU["aorta"])
    ivc_sl, ivc = _elliptic_cylinder(grid, (-24, 40), (12, 11), (-1e4, 100))
    if neighbours:
        paint_organ(ivc_sl, ivc, HU["ivc"])
        # kidneys (nephrographic-ish cortex, sinus fat), spleen, stomach, gallbladder
        for kx, kz in ((-72, -48), (72, -34)):
            paint_organ(*_ellipsoid(grid, (kx, 66, kz), (28, 26, 55), 20 * np.sign(kx)),
                        HU["kidney_cortex"])
            _paint(hu, *_ellipsoid(grid, (kx * 0.9, 62, kz), (10, 10, 25)), HU["kidney_sinus"])
            _paint(hu, *_ellipsoid(grid, (kx * 0.85, 60, kz), (5, 6, 10)), HU["renal_pelvis"])
        paint_organ(*_ellipsoid(grid, (98, 52, 34), (28, 56, 52), 35), HU["spleen"])
        st_c, st_semi, st_rot = (88, -14, 30), (38, 36, 46), -30
        paint_organ(*_ellipsoid(grid, st_c, st_semi, st_rot), HU["stomach_wall"])
        sl, lumen = _ellipsoid(grid, st_c, tuple(s - 5 for s in st_semi), st_rot)
        if sl is not None:
            _, y, _ = grid.coords(sl)
            _paint(hu, sl, lumen, HU["stomach_fluid"])
            _paint(hu, sl, lumen & (y < st_c[1] - 12), HU["air"])  # air-fluid level
        paint_organ(*_ellipsoid(grid, (-44, -58, -6), (16, 15, 34), 20), HU["gallbladder"])
    elif ivc_sl is not None:
        liver_bg[ivc_sl] |= np.broadcast_to(ivc, liver_bg[ivc_sl].shape)

    # liver: smooth union of a right and a left lobe, flattened inferiorly, inside the cavity,
    # minus the gallbladder fossa, IVC groove, renal impression, spine
    (rc, rs, rr), (lc, ls, lr) = LIVER_RIGHT_LOBE, LIVER_LEFT_LOBE
    lo = np.minimum(np.subtract(rc, max(rs[:2])), np.subtract(lc, max(ls[:2])))
    hi = np.maximum(np.add(rc, max(rs[:2])), np.add(lc, max(ls[:2])))
    lo[2], hi[2] = min(rc[2] - rs[2], lc[2] - ls[2]), max(rc[2] + rs[2], lc[2] + ls[2])
    liver_sl = grid.box(lo, hi)
    liver = np.zeros(grid.shape, bool)
    if liver_sl is not None:
        x, y, z = grid.coords(liver_sl)

        def q_of(c, s, r):
            t = math.radians(r)
            dx, dy = x - np.float32(c[0]), y - np.float32(c[1])
            u = dx * np.float32(math.cos(t)) + dy * np.float32(math.sin(t))
            v = -dx * np.float32(math.sin(t)) + dy * np.float32(math.cos(t))
            return (u / s[0]) ** 2 + (v / s[1]) ** 2 + ((z - np.float32(c[2])) / s[2]) ** 2

        k = np.float32(0.25)
        qa, qb = q_of(rc, rs, rr), q_of(lc, ls, lr)
        q = -k * np.logaddexp(-qa / k, -qb / k)  # smooth union of the lobes
        q = q + np.float32(0.06) * np.sin(x / 17.0) * np.cos(y / 23.0 + z / 19.0)  # lobulation
        # inferior surface sloping up anteriorly and medially (visceral surface)
        q = np.where(z < np.float32(-38.0) + np.float32(0.25) * (-y) + np.float32(0.2) * (x + 70),
                     np.float32(2.0), q)
        liver[liver_sl] = q <= 1.0
        del x, y, z, qa, qb, q
    liver &= ~liver_bg
    liver_hu = np.float32(liver_hu)
    hu[liver] = liver_hu
    lab[liver] = 1

    # vessels: enhancing everywhere; labelled "hepatic vessel" only inside the liver
    for v in vessels:
        sl, mask = _capsule(grid, v.start, v.end, v.diameter_mm / 2)
        if sl is None:
            continue
        _paint(hu, sl, mask, v.hu)
        if v.kind != "other":
            block = lab[sl]
            block[mask & liver[sl]] = 2

    # lesions (tumors and cysts): label 3, over vessels and liver
    lesion_voxels = []
    for les in lesions:
        value = les.hu if les.hu is not None else HU["cyst" if les.kind == "cyst" else "tumor"]
        sl, mask = _ellipsoid(grid, les.center, les.semi_axes(), les.rotation_deg)
        if sl is None:
            lesion_voxels.append(0)
            continue
        texture = les.texture_hu if les.texture_hu is not None else (8.0 if les.kind != "cyst" else 0.0)
        block = hu[sl]
        if texture > 0:
            tex = _smooth_noise(block.shape, rng, texture, 1.5)
            block[mask] = np.float32(value) + tex[mask]
        else:
            block[mask] = np.float32(value)
        lab[sl][mask] = 3
        lesion_voxels.append(int(mask.sum()))

    # liver parenchymal texture (low-frequency), partial-volume blur, correlated noise
    if noise_hu > 0:
        hu += np.where(lab > 0, _smooth_noise(grid.shape, rng, 4.0, 2.0), np.float32(0))
    if blur:
        # scanner PSF (~0.7 mm in-plane) and slice profile (~0.4 x slice thickness), in voxels
        along_si = np.abs(grid.direction[2])  # how much each array axis runs cranio-caudally
        sig_mm = 0.7 * (1 - along_si) + 0.4 * grid.spacing * along_si
        sig = np.clip(sig_mm / grid.spacing, 0.3, 0.8)[::-1]
        ndimage.gaussian_filter(hu, sig, output=hu, truncate=2.0)
    if noise_hu > 0:
        hu += _smooth_noise(grid.shape, rng, noise_hu, 0.6)
    np.round(hu, out=hu)

    ct = grid.image(hu)
    labels = grid.image(lab)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    counts = np.bincount(lab.ravel(), minlength=4)
    truths = []
    for les, nvox in zip(lesions, lesion_voxels):
        t = lesion_truth(les, vessels)
        t["voxel_volume_ml"] = nvox * voxel_ml  # before overlap with other lesions
        t["classification"] = "cyst" if les.kind == "cyst" else "tumor"
        truths.append(t)
    tumor_ml = sum(t["voxel_volume_ml"] for t in truths if t["kind"] != "cyst")
    liver_ml = float(counts[1:].sum()) * voxel_ml
    truth = {
        "coordinate_system": "LPS",
        "orientation": orientation.upper(), "tilt_deg": tilt_deg,
        "grid": {"size": grid.size.tolist(), "spacing": grid.spacing.tolist(),
                 "origin": grid.origin.tolist(), "direction": grid.direction.ravel().tolist()},
        "liver": {"volume_ml": liver_ml, "parenchyma_volume_ml": float(counts[1]) * voxel_ml},
        "vessels": {"volume_ml": float(counts[2]) * voxel_ml,
                    "segments": [{"name": v.name, "kind": v.kind, "diameter_mm": v.diameter_mm,
                                  "start_lps": list(v.start), "end_lps": list(v.end)}
                                 for v in vessels]},
        "lesion_label_volume_ml": float(counts[3]) * voxel_ml,
        "tumor_volume_ml": tumor_ml,
        "tumor_burden_percent": 100.0 * tumor_ml / liver_ml if liver_ml else 0.0,
        "lesions": truths,
        "hu": dict(HU, liver=float(liver_hu)), "noise_hu": noise_hu,
    }
    return Phantom(ct=ct, labels=labels, truth=truth, lesions=lesions, vessels=vessels)


def make_small_phantom(seed: int = 0, spacing: Sequence[float] = (3.0, 3.0, 3.0),
                       orientation: str = "LAI", **kwargs) -> Phantom:
    """Fast variant for tests: the liver region only (240 x 200 x 180 mm FOV) at 3 mm."""
    kwargs.setdefault("fov_mm", (240.0, 200.0, 180.0))
    kwargs.setdefault("center_mm", (-40.0, 0.0, 20.0))
    return make_phantom(seed, spacing, orientation, **kwargs)


def write_phantom(folder, seed: int = 0, **kwargs) -> Dict[str, str]:
    """Write ``ct.nii.gz``, ``labels.nii.gz`` and ``truth.json`` (atomic) into ``folder``."""
    import json

    from ..core.io import ensure_output_dir, write_image, write_text

    folder = ensure_output_dir(folder)
    ph = make_phantom(seed, **kwargs)
    paths = {"ct": str(write_image(ph.ct, folder / "ct.nii.gz")),
             "labels": str(write_image(ph.labels, folder / "labels.nii.gz")),
             "truth": str(write_text(json.dumps(ph.truth, indent=1), folder / "truth.json"))}
    return paths
