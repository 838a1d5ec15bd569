"""How the analysis's measurements dict is shown in Slicer: the lesion table's columns and the
staging panel's content and text (plain data, no MRML calls).

The engine's rationale sentences are written for its command line and may name flags
("Give --n/--m for one."); :func:`for_slicer` says the same with the module's own controls, so
the staging panel never speaks CLI flags.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List

TABLE_NAME = "LiverLVT lesions"

# (column, measurement key, kind) of the lesion table; kind "s" string, "d" double
TABLE_COLUMNS = (
    ("Lesion", "id", "s"),
    ("Classification", "classification", "s"),
    ("Volume (mL)", "volume_ml", "d"),
    ("Longest axial (mm)", "longest_axial_mm", "d"),
    ("Short axis (mm)", "short_axis_mm", "d"),
    ("Max 3D (mm)", "max_3d_mm", "d"),
    ("Mean HU", "mean_hu", "d"),
    ("Std HU", "std_hu", "d"),
    ("Cyst-fit mean HU", "cyst_fit_mean_hu", "d"),
    ("Vessel contact", "vessel_contact.in_contact", "s"),
    ("Max contact vessel diameter (mm)", "vessel_contact.max_vessel_diameter_mm", "d"),
    ("Contact area (mm2)", "vessel_contact.contact_area_mm2", "d"),
    ("Centroid R (mm)", "centroid_ras.0", "d"),
    ("Centroid A (mm)", "centroid_ras.1", "d"),
    ("Centroid S (mm)", "centroid_ras.2", "d"),
)

# engine (CLI) wording -> the module's controls; longest patterns first
_SLICER_WORDING = (
    (r"Give --n/--m for one\.?", "Choose N and M in the staging panel for one."),
    (r"--n/--m", "N and M in the staging panel"),
    (r"--n\b", "the N category in the staging panel"),
    (r"--m\b", "the M category in the staging panel"),
    (r"--cyst-rule\b", "the cyst rule option"),
    (r"--major-vessel-mm\b", "the major-vessel threshold option"),
    (r"--device\b", "the device option"),
    (r"--model\b", "the model selector"),
    (r"--no-tta\b|--tta\b", "the test-time augmentation option"),
)


def for_slicer(text: str) -> str:
    """An engine message with its command-line flags replaced by the module's controls."""
    for pattern, wording in _SLICER_WORDING:
        text = re.sub(pattern, wording, text)
    return text


def lookup(record: dict, dotted: str):
    """``record["a"]["b"][0]`` for ``"a.b.0"``; None where the path is missing."""
    value: Any = record
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def as_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _rationale(block: dict) -> List[str]:
    return [for_slicer(str(r)) for r in (block.get("rationale", []) or [])]


def staging_summary(measurements: dict) -> Dict[str, Any]:
    """The staging panel's content from the analysis's measurements dict."""
    staging = measurements.get("staging", {}) or {}
    paper, ajcc = staging.get("paper", {}) or {}, staging.get("ajcc8", {}) or {}
    liver = measurements.get("liver", {}) or {}
    return {
        "paper_stage": as_text(paper.get("stage")),
        "paper_rationale": _rationale(paper),
        "T": as_text(ajcc.get("T")), "N": as_text(ajcc.get("N")), "M": as_text(ajcc.get("M")),
        "stage_group": as_text(ajcc.get("stage_group")),
        "ajcc_rationale": _rationale(ajcc),
        "liver_volume_ml": as_float(liver.get("volume_ml")),
        "tumor_burden_percent": as_float(measurements.get("tumor_burden_percent")),
        "n_lesions": len(measurements.get("lesions", []) or []),
    }


def ajcc_line(summary: Dict[str, Any]) -> str:
    s = summary
    return (f"T {s['T'] or '-'}  N {s['N'] or '-'}  M {s['M'] or '-'}  "
            f"stage group {s['stage_group'] or '-'}")


def staging_text(measurements: dict) -> str:
    """Plain-text staging summary (the self-test's log)."""
    s = staging_summary(measurements)
    lines = [f"Liver volume: {s['liver_volume_ml']:.0f} mL; tumor burden: "
             f"{s['tumor_burden_percent']:.1f} %; lesions: {s['n_lesions']}",
             f"Paper stage: {s['paper_stage'] or '-'}"]
    lines += [f"  - {r}" for r in s["paper_rationale"]]
    lines.append(f"AJCC 8: {ajcc_line(s)}")
    lines += [f"  - {r}" for r in s["ajcc_rationale"]]
    return "\n".join(lines)


def rationale_text(measurements: dict) -> str:
    """The staging panel's rationale box."""
    s = staging_summary(measurements)
    return "\n".join(["Paper stage:"] + [f"- {r}" for r in s["paper_rationale"]]
                     + ["AJCC 8:"] + [f"- {r}" for r in s["ajcc_rationale"]])
