"""The measurements record (``measurements.json``, schema ``liverlvt.measurements/1``) as typed
dictionaries, and its JSON Schema check.

The record is what :func:`analysis.measure.analyze_case` returns and what the report, the meshes,
the Slicer scene logic and the CSV read; the JSON Schema shipped in
``Resources/Schemas/measurements.schema.json`` is its contract for other programs
(:func:`core.schemas.schema_errors` checks a document against it).
"""
from __future__ import annotations

from typing import List, Optional, TypedDict

SCHEMA = "liverlvt.measurements/1"

Point = List[float]


class VesselContact(TypedDict):
    in_contact: bool
    max_vessel_diameter_mm: Optional[float]
    contact_area_mm2: Optional[float]
    diameter_at_ras: Optional[Point]


class Lesion(TypedDict):
    id: int
    classification: str            # "tumor", "cyst" or "indeterminate" (cyst triage)
    volume_ml: float
    longest_axial_mm: float        # RECIST 1.1 longest axial diameter
    short_axis_mm: float           # its perpendicular (WHO bidimensional product)
    max_3d_mm: float               # maximum 3-D (Feret) diameter
    centroid_ras: Point
    mean_hu: Optional[float]
    std_hu: Optional[float]
    cyst_fit_mean_hu: Optional[float]
    vessel_contact: VesselContact
    indeterminate: bool
    triage_reason: str
    core_mean_hu: Optional[float]
    core_std_hu: Optional[float]
    axial_endpoints_ras: List[List[Point]]
    axial_slice_s_mm: Optional[float]
    max_3d_endpoints_ras: List[Point]
    voxel_count: int
    label_value: int
    component: int
    seed_ijk: List[int]            # a voxel of the lesion (ITK index order): its identity


class PaperStage(TypedDict, total=False):
    stage: int
    rationale: List[str]
    rule_note: str                 # how the seed paper's rule is applied (text vs pseudo-code)


class AjccStage(TypedDict):
    T: str
    N: str
    M: str
    stage_group: Optional[str]
    rationale: List[str]


class Staging(TypedDict):
    paper: PaperStage
    ajcc8: AjccStage
    major_vessel_mm: float


class Measurements(TypedDict):
    schema: str
    liver: dict
    vessels: dict
    tumor_burden_percent: Optional[float]
    tumor_volume_ml: float
    cyst_volume_ml: float
    lesion_volume_ml: float
    lesions: List[Lesion]
    staging: Staging
    settings: dict
    image: dict
    notes: List[str]
