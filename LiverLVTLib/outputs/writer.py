"""Write one case's analysis: ``measurements.json``, ``lesions.csv``, ``models/`` (.vtp + .stl,
LPS) and ``report.html``, each atomically (a failed write leaves no half-written file)."""
from __future__ import annotations

import csv
import io as _io
import json
from typing import Dict

import SimpleITK as sitk

from ..analysis.lesions import lesion_masks
from ..core.io import ensure_output_dir, write_text

CSV_FIELDS = ("id", "classification", "volume_ml", "longest_axial_mm", "short_axis_mm",
              "max_3d_mm", "mean_hu", "std_hu", "cyst_fit_mean_hu", "in_contact",
              "max_vessel_diameter_mm", "contact_area_mm2", "centroid_r", "centroid_a",
              "centroid_s", "triage_reason")


def lesions_csv(result: Dict) -> str:
    """One row per lesion of a ``measurements.json`` result (vessel contact and centroid flat)."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for les in result["lesions"]:
        vc = les["vessel_contact"]
        r, a, s = les["centroid_ras"]
        row = {k: les.get(k) for k in CSV_FIELDS}
        row.update(in_contact=vc["in_contact"], max_vessel_diameter_mm=vc["max_vessel_diameter_mm"],
                   contact_area_mm2=vc["contact_area_mm2"], centroid_r=r, centroid_a=a,
                   centroid_s=s)
        writer.writerow(row)
    return buf.getvalue()


def write_analysis(result: Dict, ct: sitk.Image, labels: sitk.Image, out_dir, models: bool = True,
                   report: bool = True) -> Dict:
    """Write measurements.json, lesions.csv, models/ (.vtp + .stl, LPS) and report.html
    (all atomically); returns {name: path} (``models``: the list of model files)."""
    out = ensure_output_dir(out_dir)
    paths = {"measurements": str(write_text(json.dumps(result, indent=1) + "\n",
                                             out / "measurements.json")),
             "lesions_csv": str(write_text(lesions_csv(result), out / "lesions.csv"))}
    surfaces = None
    if models or report:
        from .meshes import build_surfaces, write_surfaces

        # each lesion's voxels found once, from its record, for both the models and the report
        masks = lesion_masks(sitk.GetArrayViewFromImage(labels), result["lesions"])
        surfaces = build_surfaces(labels, result, masks=masks)
        if models:
            paths["models"] = write_surfaces(surfaces, ensure_output_dir(out / "models"))
    if report:
        from .report import write_report

        paths["report"] = str(write_report(result, ct, labels, out / "report.html", surfaces,
                                           masks=masks))
    return paths
