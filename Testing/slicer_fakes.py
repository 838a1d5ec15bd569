"""A stand-in for LiverLVTLib.analyze.analyze_case used only while the analysis stage is absent
from a checkout: same schema, simple geometry (connected components of label 3, longest axial
diameter by brute force on the largest axial slice). Never used when the real one imports."""
from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LiverLVTLib import mrml_convert as mc


def _axial_diameters(mask_slice: np.ndarray, k: int, image: sitk.Image):
    jj, ii = np.nonzero(mask_slice)
    m = mc.ijk_to_ras(image)
    pts = (m @ np.stack([ii, jj, np.full_like(ii, k), np.ones_like(ii)]).astype(float))[:3].T
    if len(pts) == 1:
        return [[pts[0].tolist(), pts[0].tolist()], [pts[0].tolist(), pts[0].tolist()]], 0.0, 0.0
    best, pair = -1.0, (0, 0)
    for a, b in itertools.combinations(range(len(pts)), 2):
        d = float(np.linalg.norm(pts[a] - pts[b]))
        if d > best:
            best, pair = d, (a, b)
    p0, p1 = pts[pair[0]], pts[pair[1]]
    axis = (p1 - p0) / max(best, 1e-9)
    rel = pts - (p0 + p1) / 2
    off = rel - np.outer(rel @ axis, axis)
    normal = np.cross(axis, m[:3, 2] / np.linalg.norm(m[:3, 2]))
    proj = off @ normal
    q0 = (p0 + p1) / 2 + normal * proj.min()
    q1 = (p0 + p1) / 2 + normal * proj.max()
    short = float(np.linalg.norm(q1 - q0))
    return [[p0.tolist(), p1.tolist()], [q0.tolist(), q1.tolist()]], best, short


def fake_analyze_case(ct, labels, n="NX", m="MX", **_):
    arr = sitk.GetArrayViewFromImage(labels)
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    comps, count = ndimage.label(arr == 3, structure=np.ones((3, 3, 3), bool))
    lesions = []
    for c in range(1, count + 1):
        mask = comps == c
        areas = mask.sum(axis=(1, 2))
        k = int(np.argmax(areas))
        endpoints, longest, short = _axial_diameters(mask[k], k, labels)
        kji = np.array(ndimage.center_of_mass(mask))
        centroid = (mc.ijk_to_ras(labels) @ np.array([kji[2], kji[1], kji[0], 1.0]))[:3]
        lesions.append({"id": c, "classification": "tumor", "volume_ml": mask.sum() * voxel_ml,
                        "longest_axial_mm": longest, "short_axis_mm": short,
                        "max_3d_mm": longest, "centroid_ras": centroid.tolist(),
                        "mean_hu": 50.0, "std_hu": 10.0, "cyst_fit_mean_hu": None,
                        "vessel_contact": {"in_contact": False, "max_vessel_diameter_mm": 0.0,
                                           "contact_area_mm2": 0.0},
                        "axial_endpoints_ras": endpoints})
    liver_ml = float((arr > 0).sum()) * voxel_ml
    tumor_ml = float((arr == 3).sum()) * voxel_ml
    t = "T1" if count <= 1 else "T2"
    return {"schema": "liverlvt.measurements/1",
            "liver": {"volume_ml": liver_ml, "parenchyma_volume_ml": float((arr == 1).sum()) * voxel_ml},
            "vessels": {"volume_ml": float((arr == 2).sum()) * voxel_ml},
            "tumor_burden_percent": 100.0 * tumor_ml / max(liver_ml, 1e-9),
            "lesions": lesions,
            "staging": {"paper": {"stage": f"{count} lesions", "rationale": [f"{count} tumors"]},
                        "ajcc8": {"T": t, "N": n.replace("X", "X"), "M": m, "stage_group": "?",
                                  "rationale": [f"{count} tumors -> {t}"]}}}
