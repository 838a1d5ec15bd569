"""Staging from CT measurements: the seed paper's CT-only rule and the AJCC 8th-edition T category.

Both work on the lesion list of :mod:`LiverLVTLib.analysis.measure`: cysts are left out; tumors and
indeterminate lesions count. "Greatest diameter" is the maximum 3-D (Feret) diameter of the
lesion, the greatest dimension in any direction. Vessel contact uses the vessel diameter at the
contact; a vessel of at least ``major_vessel_mm`` counts as a major vessel.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from ..core.options import M_VALUES, MAJOR_VESSEL_MM, N_VALUES, AnalysisOptions

LARGE_MM = 50.0  # 5 cm (paper stage 3; AJCC T3)
SMALL_MM = 20.0  # 2 cm (paper stage 1; AJCC T1a)

PAPER_RULE_HELP = (
    "Seed paper's CT-only stage (Kim et al. 2024, Algorithm 1 and its text), applied as the text "
    "states, stage 4 taking precedence: 4 if any tumor touches a vessel whose diameter at the "
    "contact is >= the major-vessel threshold; else 3 if any tumor's greatest diameter is >= 50 mm; "
    "else 1 for exactly one tumor < 20 mm; else 2; 0 without tumor. The paper's pseudo-code reads "
    "differently: its later size test overwrites stage 4 with stage 3 for a >= 50 mm tumor, and it "
    "counts small tumors (rather than requiring a single tumor) to decide stage 1. LiverLVT follows "
    "the text.")


def _fmt(mm: float) -> str:
    return f"{mm:.0f} mm" if mm >= 10 else f"{mm:.1f} mm"


def counted_tumors(lesions: Sequence[Dict]) -> List[Dict]:
    """Lesions that count for staging: tumors and indeterminate lesions (cysts left out)."""
    return [les for les in lesions if les.get("classification") != "cyst"]


def _major_contacts(tumors, major_vessel_mm):
    out = []
    for les in tumors:
        vc = les.get("vessel_contact") or {}
        d = vc.get("max_vessel_diameter_mm")
        if vc.get("in_contact") and d is not None and d >= major_vessel_mm:
            out.append((les, d))
    return out


def _cyst_note(lesions) -> List[str]:
    cysts = [les for les in lesions if les.get("classification") == "cyst"]
    if not cysts:
        return []
    ids = ", ".join(f"#{les['id']}" for les in cysts)
    return [f"{len(cysts)} lesion(s) classed as simple cyst ({ids}) are not counted."]


def paper_stage(lesions: Sequence[Dict], major_vessel_mm: float = MAJOR_VESSEL_MM) -> Dict:
    """Seed paper's CT-only stage 0-4 with reasons (Kim et al. 2024, text of Algorithm 1).

    Implemented as the paper's *text* says: stage 4 (tumor touching a major vessel) takes
    precedence over everything. Its pseudo-code differs in two places: (1) the >= 50 mm test runs
    after the vessel test and overwrites stage 4 with 3; (2) stage 1 is decided by counting small
    tumors instead of requiring exactly one tumor < 20 mm. See ``PAPER_RULE_HELP``.
    """
    tumors = counted_tumors(lesions)
    why = _cyst_note(lesions)
    if not tumors:
        return {"stage": 0, "rationale": why + ["No liver tumor found: stage 0."]}
    contacts = _major_contacts(tumors, major_vessel_mm)
    if contacts:
        les, d = max(contacts, key=lambda c: c[1])
        why.append(f"Tumor #{les['id']} touches a hepatic vessel {_fmt(d)} wide at the contact "
                   f"(major vessel: >= {_fmt(major_vessel_mm)}): stage 4 (takes precedence over "
                   "size and number).")
        return {"stage": 4, "rationale": why}
    big = [les for les in tumors if les["max_3d_mm"] >= LARGE_MM]
    if big:
        les = max(big, key=lambda x: x["max_3d_mm"])
        why.append(f"No tumor touches a major vessel. Tumor #{les['id']} has a greatest diameter "
                   f"of {_fmt(les['max_3d_mm'])} (>= 50 mm): stage 3.")
        return {"stage": 3, "rationale": why}
    if len(tumors) == 1 and tumors[0]["max_3d_mm"] < SMALL_MM:
        why.append(f"A single tumor, {_fmt(tumors[0]['max_3d_mm'])} (< 20 mm), not touching a "
                   "major vessel: stage 1.")
        return {"stage": 1, "rationale": why}
    largest = max(tumors, key=lambda x: x["max_3d_mm"])
    if len(tumors) == 1:
        why.append(f"A single tumor of {_fmt(largest['max_3d_mm'])} (20-50 mm), not touching a "
                   "major vessel: stage 2.")
    else:
        why.append(f"{len(tumors)} tumors, the largest {_fmt(largest['max_3d_mm'])} (< 50 mm), "
                   "none touching a major vessel: stage 2.")
    return {"stage": 2, "rationale": why}


# AJCC Cancer Staging Manual, 8th ed. (2017), Liver (hepatocellular carcinoma) chapter.
STAGE_GROUPS = {"T1a": "IA", "T1b": "IB", "T2": "II", "T3": "IIIA", "T4": "IIIB"}


def ajcc8(lesions: Sequence[Dict], n: str = AnalysisOptions.n, m: str = AnalysisOptions.m,
          major_vessel_mm: float = MAJOR_VESSEL_MM) -> Dict:
    """AJCC 8th-edition T category from CT, and the stage group when N and M are given."""
    n, m = n.upper(), m.upper()
    if n not in N_VALUES or m not in M_VALUES:
        raise ValueError(f"N must be one of {N_VALUES} and M one of {M_VALUES}")
    tumors = counted_tumors(lesions)
    why = _cyst_note(lesions)
    contacts = _major_contacts(tumors, major_vessel_mm)
    if not tumors:
        t = "T0"
        why.append("T0: no primary liver tumor found.")
    elif contacts:
        les, d = max(contacts, key=lambda c: c[1])
        t = "T4"
        why.append(f"T4: tumor #{les['id']} touches a major hepatic vessel ({_fmt(d)} at the "
                   "contact, portal or hepatic vein branch). This is a CT finding of contact, not "
                   "proof of invasion.")
    elif len(tumors) == 1:
        size = tumors[0]["max_3d_mm"]
        if size <= SMALL_MM:
            t = "T1a"
            why.append(f"T1a: solitary tumor of {_fmt(size)} (<= 2 cm).")
        else:
            t = "T1b"
            why.append(f"T1b: solitary tumor of {_fmt(size)} (> 2 cm) without major-vessel "
                       "contact. Microvascular invasion, which would make it T2, cannot be seen "
                       "on CT (pathology).")
    else:
        largest = max(x["max_3d_mm"] for x in tumors)
        if largest > LARGE_MM:
            t = "T3"
            why.append(f"T3: {len(tumors)} tumors, at least one > 5 cm (largest "
                       f"{_fmt(largest)}).")
        else:
            t = "T2"
            why.append(f"T2: {len(tumors)} tumors, none > 5 cm (largest {_fmt(largest)}).")
    group = None
    if m == "M1":
        group = "IVB"
        why.append("M1 (distant metastasis): stage IVB, any T, any N.")
    elif n == "N1" and m == "M0":
        group = "IVA"
        why.append("N1 M0 (regional node metastasis): stage IVA, any T.")
    elif n == "N0" and m == "M0":
        group = STAGE_GROUPS.get(t)
        if group:
            why.append(f"{t} N0 M0: stage {group}.")
        else:
            why.append("No tumor: no stage group.")
    else:
        why.append(f"N and M not both known ({n}, {m}; nodes and distant disease are not "
                   "assessed from the liver labels): no stage group. Give N and M for one.")
    if t == "T4":
        why.append("Note: the seed paper's 'stage 4' (major-vessel contact) corresponds to AJCC "
                   "T4, i.e. stage IIIB when N0 M0 -- not AJCC stage IV.")
    return {"T": t, "N": n, "M": m, "stage_group": group, "rationale": why}


def stage_case(lesions: Sequence[Dict], n: str = AnalysisOptions.n, m: str = AnalysisOptions.m,
               major_vessel_mm: float = MAJOR_VESSEL_MM) -> Dict:
    return {"paper": paper_stage(lesions, major_vessel_mm),
            "ajcc8": ajcc8(lesions, n, m, major_vessel_mm),
            "major_vessel_mm": float(major_vessel_mm)}
