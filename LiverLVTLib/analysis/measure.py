"""Clinical analysis of a liver label map on its CT: per-lesion measurements (volume, RECIST/WHO
axial diameters, maximum 3-D diameter, HU, cyst triage, hepatic-vessel contact), volumetry,
staging (seed paper's CT-only rule and AJCC 8th-edition T category), returned as the
``measurements.json`` record (:mod:`LiverLVTLib.outputs.writer` writes it with the surface models
and the HTML report). Options: :class:`LiverLVTLib.core.options.AnalysisOptions`.

LABELS: 0 background, 1 liver parenchyma, 2 hepatic vessel, 3 tumor, on the CT's own grid (a
label map on another grid is refused; nothing is resampled). Every size is in millimetres in
patient space, independent of how the volume is stored.

Staging note: the seed paper's rule (Kim et al. 2024) is applied as its text states, stage 4
(tumor touching a vessel >= the major-vessel threshold at the contact) taking precedence; its pseudo-code
would let a >= 50 mm tumor overwrite stage 4 with 3 and counts small tumors for stage 1. The
paper's "stage 4" is AJCC T4 (stage IIIB when N0 M0), not AJCC stage IV.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ..core.io import as_labels, read_ct, read_labels
from ..core.options import AnalysisOptions
from ..core.progress import no_progress
from . import cyst as cyst_mod
from . import staging as staging_mod
from .lesions import Grid, crop_image, expand_slices, find_lesions, measure_lesion, to_ras
from .record import SCHEMA, Measurements  # noqa: F401  (the record's type and schema id)
from .vessel_contact import vessel_contact
from .volumetry import label_counts, volumes

log = logging.getLogger("liverlvt")

NOTES = (
    "Research software, not a medical device: measurements come from the label map and "
    "must be checked by a radiologist.",
    "Vessel contact is a CT finding, not proof of invasion.",
    staging_mod.PAPER_RULE_HELP,
)


def _rounded(value, digits: int = 3):
    """JSON-ready copy: numpy -> Python, floats rounded, NaN -> None."""
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return _rounded(value.tolist(), digits)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else round(float(value), digits)
    return value


def _measure_lesions(ct: sitk.Image, lab: np.ndarray, hu: np.ndarray, grid: Grid, cyst_rule: str,
                     progress: Callable[[str, float], None]) -> List[Dict]:
    """One record per lesion (connected tumor component, in component order): geometry, HU,
    cyst triage and vessel contact, plus what a viewer needs to draw it."""
    cc, found = find_lesions(lab, grid)  # the one lesion identity: id = position in this list
    lesions = []
    for order, les in enumerate(found, start=1):
        comp, bbox = les.component, les.box
        sl = expand_slices(bbox, cc.shape, (1, 1, 1))
        mask_crop = cc[sl] == comp
        geo = measure_lesion(cc[sl], comp, hu[sl], crop_image(ct, sl))
        tri = cyst_mod.triage(mask_crop, hu[sl], cyst_rule)
        contact = vessel_contact(cc[bbox] == comp, lab, grid, bbox)
        seed = np.argwhere(mask_crop)[0] + [s.start for s in sl]
        long_ras = [to_ras(p) for p in geo["long_lps"]]
        short_ras = [to_ras(p) for p in geo["short_lps"]]
        lesions.append({
            "id": order,
            "classification": tri["classification"],
            "volume_ml": geo["volume_ml"],
            "longest_axial_mm": geo["longest_axial_mm"],
            "short_axis_mm": geo["short_axis_mm"],
            "max_3d_mm": geo["max_3d_mm"],
            "centroid_ras": to_ras(geo["centroid_lps"]),
            "mean_hu": geo["mean_hu"], "std_hu": geo["std_hu"],
            "cyst_fit_mean_hu": tri["cyst_fit_mean_hu"],
            "vessel_contact": {
                "in_contact": contact["in_contact"],
                "max_vessel_diameter_mm": contact["max_vessel_diameter_mm"],
                "contact_area_mm2": contact["contact_area_mm2"],
                "diameter_at_ras": (to_ras(contact["diameter_at_lps"])
                                    if contact.get("diameter_at_lps") is not None else None),
            },
            "indeterminate": tri["classification"] == "indeterminate",
            "triage_reason": tri["triage_reason"],
            "core_mean_hu": tri["core_mean_hu"], "core_std_hu": tri["core_std_hu"],
            "axial_endpoints_ras": [long_ras, short_ras],
            "axial_slice_s_mm": geo["slice_z_lps"],
            "max_3d_endpoints_ras": [to_ras(p) for p in geo["feret_lps"]],
            "voxel_count": geo["voxels"],
            "label_value": 3, "component": order,
            "seed_ijk": [int(v) for v in seed[::-1]],
        })
        progress("analyze", 0.9 * order / max(len(found), 1))
    return lesions


def coverage_warnings(lab: np.ndarray) -> List[str]:
    """A warning (logged, and kept in the notes) when the liver reaches the first or last slice
    of the CT: the CT does not cover the whole liver, so its volume and the burden are partial."""
    liver = np.asarray(lab) > 0
    ends = [name for name, plane in (("first", liver[0]), ("last", liver[-1])) if plane.any()]
    if not ends:
        return []
    text = (f"Warning: the liver reaches the {' and the '.join(ends)} slice of the CT, so the CT "
            "does not cover the whole liver: liver volume and tumor burden are underestimated "
            "and lesions outside the field of view are missed.")
    log.warning(text[len("Warning: "):])
    return [text]


def _image_info(ct: sitk.Image) -> Dict:
    direction = np.asarray(ct.GetDirection()).reshape(3, 3)
    return {"size": list(ct.GetSize()), "spacing_mm": list(ct.GetSpacing()),
            "orientation": sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
                ct.GetDirection()),
            "oblique": not Grid.of(ct).is_axis_aligned(),
            "direction": direction.ravel().tolist()}


def analyze_case(ct, labels, options: Optional[AnalysisOptions] = None,
                 progress: Optional[Callable[[str, float], None]] = None, **changes) -> Dict:
    """Measure, triage and stage one case; returns the ``measurements.json`` dict (no files).

    ``ct`` (sitk.Image or path) and ``labels`` (sitk.Image on the CT's grid); ``options`` an
    :class:`AnalysisOptions` (default: its defaults), with ``changes`` (its field names, e.g.
    ``n="N0"``) on top; bad options are an InputError before any work. Each lesion also carries
    what a viewer needs to draw it: ``axial_endpoints_ras`` (the longest axial diameter's and its
    perpendicular's end points, RAS mm, on the lesion's measurement slice),
    ``max_3d_endpoints_ras``, ``label_value`` and ``component``/``seed_ijk`` (a voxel of the
    lesion, ITK index order) to trace it back in the label map.
    """
    progress = progress or no_progress
    options = AnalysisOptions.of(options, **changes)
    ct = read_ct(ct)
    labels = read_labels(labels, ct) if isinstance(labels, (str, os.PathLike)) else as_labels(labels, ct)
    lab = sitk.GetArrayViewFromImage(labels)
    hu = sitk.GetArrayViewFromImage(ct)
    grid = Grid.of(ct)
    counts = label_counts(lab)
    volumes(lab, grid.voxel_ml, counts=counts)  # refuses a label map without liver before any work
    progress("analyze", 0.0)
    lesions = _measure_lesions(ct, lab, hu, grid, options.cyst_rule, progress)
    vol = volumes(lab, grid.voxel_ml, lesions, counts=counts)
    staging = staging_mod.stage_case(lesions, options.n, options.m, options.major_vessel_mm)
    staging["paper"]["rule_note"] = staging_mod.PAPER_RULE_HELP
    result = {
        "schema": SCHEMA,
        "liver": vol["liver"], "vessels": vol["vessels"],
        "tumor_burden_percent": vol["tumor_burden_percent"],
        "tumor_volume_ml": vol["tumor_volume_ml"], "cyst_volume_ml": vol["cyst_volume_ml"],
        "lesion_volume_ml": vol["lesion_volume_ml"],
        "lesions": lesions,
        "staging": staging,
        "settings": options.as_settings(),
        "image": _image_info(ct),
        "notes": list(NOTES) + coverage_warnings(lab),
    }
    progress("analyze", 1.0)
    return _rounded(result)
