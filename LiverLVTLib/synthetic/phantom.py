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
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from . import anatomy
from .shapes import AXIS_VECTORS, Vec3, _make_grid, direction_from_orientation, segment_distance  # noqa: F401

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
    canvas = anatomy.Canvas.new(grid, rng, HU)
    anatomy.body_wall(canvas)
    if neighbours:
        anatomy.ribs(canvas)
        anatomy.spine(canvas)
        anatomy.lungs_bowel_pancreas(canvas)
    anatomy.ivc_and_organs(canvas, neighbours)
    liver_mask = anatomy.liver(canvas, LIVER_RIGHT_LOBE, LIVER_LEFT_LOBE, liver_hu)
    anatomy.vessels(canvas, vessels, liver_mask)
    lesion_voxels = anatomy.lesions(canvas, lesions)
    anatomy.scanner(canvas, noise_hu, blur)
    truth = _truth(grid, canvas.lab, orientation, tilt_deg, lesions, lesion_voxels, vessels,
                   dict(HU, liver=float(np.float32(liver_hu))), noise_hu)
    return Phantom(ct=grid.image(canvas.hu), labels=grid.image(canvas.lab), truth=truth,
                   lesions=lesions, vessels=vessels)


def _truth(grid, lab, orientation, tilt_deg, lesions, lesion_voxels, vessels, hu_table, noise_hu) -> Dict:
    """``Phantom.truth``: grid, volumes from the labels drawn, each lesion's analytic truth."""
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
    return {
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
        "hu": hu_table, "noise_hu": noise_hu,
    }


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
