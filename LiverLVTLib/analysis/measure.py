"""Clinical analysis of a liver label map on its CT: per-lesion measurements (volume, RECIST/WHO
axial diameters, maximum 3-D diameter, HU, cyst triage, hepatic-vessel contact), volumetry,
staging (seed paper's CT-only rule and AJCC 8th-edition T category), surface models and an HTML
report.

LABELS: 0 background, 1 liver parenchyma, 2 hepatic vessel, 3 tumor, on the CT's own grid (a
label map on another grid is refused; nothing is resampled). Every size is in millimetres in
patient space, independent of how the volume is stored.

Staging note: the seed paper's rule (Kim et al. 2024) is applied as its text states, stage 4
(tumor touching a vessel >= --major-vessel-mm at the contact) taking precedence; its pseudo-code
would let a >= 50 mm tumor overwrite stage 4 with 3 and counts small tumors for stage 1. The
paper's "stage 4" is AJCC T4 (stage IIIB when N0 M0), not AJCC stage IV.
"""
from __future__ import annotations

import csv
import io as _io
import json
import math
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.errors import InputError
from ..core.io import as_labels, case_name, ensure_output_dir, read_ct, read_labels, write_text
from ..core.progress import no_progress
from . import cyst as cyst_mod
from . import staging as staging_mod
from .lesions import Grid, crop_image, expand_slices, lesion_components, measure_lesion, to_ras
from .record import SCHEMA, Measurements  # noqa: F401  (the record's type and schema id)
from .vessel_contact import vessel_contact
from .volumetry import volumes

CSV_FIELDS = ("id", "classification", "volume_ml", "longest_axial_mm", "short_axis_mm",
              "max_3d_mm", "mean_hu", "std_hu", "cyst_fit_mean_hu", "in_contact",
              "max_vessel_diameter_mm", "contact_area_mm2", "centroid_r", "centroid_a",
              "centroid_s", "triage_reason")


def _check_options(n: str, m: str, cyst_rule: str, major_vessel_mm: float):
    if str(n).upper() not in staging_mod.N_VALUES:
        raise InputError(f"N category '{n}' is not one of {', '.join(staging_mod.N_VALUES)}",
                         "use --n N0, N1 or NX (unknown)")
    if str(m).upper() not in staging_mod.M_VALUES:
        raise InputError(f"M category '{m}' is not one of {', '.join(staging_mod.M_VALUES)}",
                         "use --m M0, M1 or MX (unknown)")
    if cyst_rule not in cyst_mod.RULES:
        raise InputError(f"cyst rule '{cyst_rule}' is unknown",
                         "use --cyst-rule acr, gaussian45 or off")
    if not (isinstance(major_vessel_mm, (int, float)) and math.isfinite(major_vessel_mm)
            and major_vessel_mm > 0):
        raise InputError(f"major-vessel threshold {major_vessel_mm} mm is not a positive number",
                         "use e.g. --major-vessel-mm 5")


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


def analyze_case(ct: sitk.Image, labels: sitk.Image, n: str = "NX", m: str = "MX",
                 cyst_rule: str = "acr", major_vessel_mm: float = staging_mod.MAJOR_VESSEL_MM,
                 progress: Optional[Callable[[str, float], None]] = None) -> Dict:
    """Measure, triage and stage one case; returns the ``measurements.json`` dict (no files).

    Each lesion also carries what a viewer needs to draw it: ``axial_endpoints_ras`` (the
    longest axial diameter's and its perpendicular's end points, RAS mm, on the lesion's
    measurement slice), ``max_3d_endpoints_ras``, ``label_value`` and ``component``/``seed_ijk``
    (a voxel of the lesion, ITK index order) to trace it back in the label map.
    """
    progress = progress or no_progress
    _check_options(n, m, cyst_rule, major_vessel_mm)
    ct = read_ct(ct)
    labels = as_labels(labels, ct)
    lab = sitk.GetArrayViewFromImage(labels)
    hu = sitk.GetArrayViewFromImage(ct)
    grid = Grid.of(ct)
    volumes(lab, grid.voxel_ml)  # refuses a label map without liver before any work
    progress("analyze", 0.0)

    cc, ids = lesion_components(lab, grid)
    boxes = ndimage.find_objects(cc) if ids else []
    lesions = []
    for order, comp in enumerate(ids, start=1):
        bbox = boxes[comp - 1]
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
        progress("analyze", 0.9 * order / max(len(ids), 1))

    vol = volumes(lab, grid.voxel_ml, lesions)
    staging = staging_mod.stage_case(lesions, n, m, major_vessel_mm)
    staging["paper"]["rule_note"] = staging_mod.PAPER_RULE_HELP
    direction = np.asarray(ct.GetDirection()).reshape(3, 3)
    result = {
        "schema": SCHEMA,
        "liver": vol["liver"], "vessels": vol["vessels"],
        "tumor_burden_percent": vol["tumor_burden_percent"],
        "tumor_volume_ml": vol["tumor_volume_ml"], "cyst_volume_ml": vol["cyst_volume_ml"],
        "lesion_volume_ml": vol["lesion_volume_ml"],
        "lesions": lesions,
        "staging": staging,
        "settings": {"n": n.upper(), "m": m.upper(), "cyst_rule": cyst_rule,
                     "major_vessel_mm": float(major_vessel_mm)},
        "image": {"size": list(ct.GetSize()), "spacing_mm": list(ct.GetSpacing()),
                  "orientation": sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
                      ct.GetDirection()),
                  "oblique": not Grid.of(ct).is_axis_aligned(),
                  "direction": direction.ravel().tolist()},
        "notes": [
            "Research software, not a medical device: measurements come from the label map and "
            "must be checked by a radiologist.",
            "Vessel contact is a CT finding, not proof of invasion.",
            staging_mod.PAPER_RULE_HELP,
        ],
    }
    progress("analyze", 1.0)
    return _rounded(result)


def lesions_csv(result: Dict) -> str:
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
    (all atomically); returns {name: path}."""
    out = ensure_output_dir(out_dir)
    paths = {"measurements": str(write_text(json.dumps(result, indent=1) + "\n",
                                             out / "measurements.json")),
             "lesions_csv": str(write_text(lesions_csv(result), out / "lesions.csv"))}
    surfaces = None
    if models or report:
        from ..outputs.meshes import build_surfaces, write_surfaces

        surfaces = build_surfaces(labels, result)
        if models:
            paths["models"] = write_surfaces(surfaces, ensure_output_dir(out / "models"))
    if report:
        from ..outputs.report import write_report

        paths["report"] = str(write_report(result, ct, labels, out / "report.html", surfaces))
    return paths


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("ct", metavar="CT", help="CT volume (NIfTI/NRRD/MHA or DICOM folder)")
    parser.add_argument("labels", metavar="LABELS",
                        help="label map on the CT grid: 0 bg, 1 liver, 2 hepatic vessel, 3 tumor")
    parser.add_argument("--out", default=None,
                        help="output folder (default: outputs/<CT name>-analysis)")
    add_staging_arguments(parser)


def add_staging_arguments(parser) -> None:
    """Options shared by ``analyze``, ``segment`` and ``demo`` (which analyze their labels)."""
    from ..app.scene_bundle import add_scene_argument

    parser.add_argument("--n", default="NX", type=str.upper, choices=staging_mod.N_VALUES,
                        help="regional lymph nodes for the AJCC stage group (default NX: unknown)")
    parser.add_argument("--m", default="MX", type=str.upper, choices=staging_mod.M_VALUES,
                        help="distant metastasis for the AJCC stage group (default MX: unknown)")
    parser.add_argument("--cyst-rule", default="acr", choices=cyst_mod.RULES,
                        help="acr (default): mean <= 20 HU and homogeneous -> cyst, 20-45 HU -> "
                        "indeterminate (counted as tumor, flagged), above -> tumor (ACR white "
                        "paper, Gore et al. 2017); gaussian45: the seed paper's Gaussian-fit mean "
                        "< 45 HU -> cyst; off: every lesion is a tumor")
    parser.add_argument("--major-vessel-mm", type=float, default=staging_mod.MAJOR_VESSEL_MM,
                        help="vessel diameter at the contact (mm) from which tumor contact "
                        "means paper stage 4 / AJCC T4 (default 5). " + staging_mod.PAPER_RULE_HELP)
    parser.add_argument("--no-models", action="store_true", help="skip the surface models")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    add_scene_argument(parser)


def _default_out(ct_path: str) -> Path:
    return Path("outputs") / f"{case_name(ct_path)}-analysis"


def run(args) -> int:
    ct = read_ct(args.ct)
    labels = read_labels(args.labels, ct)
    out = Path(args.out) if args.out else _default_out(args.ct)
    return run_on_images(args, ct, labels, out, ct_name=case_name(args.ct))


def run_on_images(args, ct: sitk.Image, labels: sitk.Image, out, ct_name: str = "CT") -> int:
    """Analyze, write the outputs (and the scene bundle with ``--scene``), print a summary."""
    result = analyze_case(ct, labels, args.n, args.m, args.cyst_rule, args.major_vessel_mm)
    paths = write_analysis(result, ct, labels, out, models=not args.no_models,
                           report=not args.no_report)
    if getattr(args, "scene", None):
        from ..app.scene_bundle import write_scene_bundle

        paths["scene"] = str(write_scene_bundle(ct, labels, result, args.scene, ct_name=ct_name))
    paper, ajcc = result["staging"]["paper"], result["staging"]["ajcc8"]
    kinds = [les["classification"] for les in result["lesions"]]
    print(f"liver {result['liver']['volume_ml']:.0f} mL, {kinds.count('tumor')} tumor(s), "
          f"{kinds.count('indeterminate')} indeterminate, {kinds.count('cyst')} cyst(s); "
          f"tumor burden {result['tumor_burden_percent']:.1f} %")
    print(f"seed-paper stage {paper['stage']}; AJCC 8th {ajcc['T']} {ajcc['N']} {ajcc['M']}"
          + (f", stage {ajcc['stage_group']}" if ajcc["stage_group"] else ""))
    print(f"outputs in {out}:")
    for key, value in paths.items():
        if key == "models":
            print(f"  models: {len(value)} files in {Path(value[0]).parent if value else out}")
        else:
            print(f"  {key}: {value}")
    return 0
