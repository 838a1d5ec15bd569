"""What LiverLVT's segments are called, coded and coloured in Slicer (data, no MRML calls).

SNOMED-CT codes as SlicerTotalSegmentator tags liver, liver_vessels and liver_tumor
(TotalSegmentator/Resources/totalsegmentator_snomed_mapping.csv in lassoan/SlicerTotalSegmentator);
colours are Slicer's GenericAnatomyColors entries (liver, mass) and its venous blue. The same
codes and colours are in Resources/Terminology (a test keeps the two equal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

Code = Tuple[str, str, str]  # (coding scheme, value, meaning)

TERMINOLOGY_CONTEXT = "Segmentation category and type - LiverLVT"
REGION_CONTEXT = "Anatomic codes - DICOM master list"
ANATOMICAL_STRUCTURE: Code = ("SCT", "123037004", "Anatomical Structure")
ALTERED_STRUCTURE: Code = ("SCT", "49755003", "Morphologically Altered Structure")
LIVER_CODE: Code = ("SCT", "10200004", "Liver")
BLOOD_VESSEL_CODE: Code = ("SCT", "59820001", "Blood vessel")
NEOPLASM_CODE: Code = ("SCT", "108369006", "Neoplasm")


@dataclass(frozen=True)
class SegmentSpec:
    """One engine label as a Slicer segment."""

    label: int
    name: str
    category: Code
    type: Code
    region: Optional[Code]
    color: Tuple[int, int, int]

    @property
    def terminology(self) -> str:
        """Slicer's serialized terminology entry: context~category~type~modifier~region
        context~region~region modifier, each code as scheme^value^meaning."""
        code = lambda c: "^".join(c) if c else "^^"  # noqa: E731
        return "~".join([TERMINOLOGY_CONTEXT, code(self.category), code(self.type), "^^",
                         REGION_CONTEXT, code(self.region), "^^"])

    @property
    def color_float(self) -> Tuple[float, float, float]:
        return tuple(c / 255.0 for c in self.color)


SEGMENTS = (
    SegmentSpec(1, "Liver", ANATOMICAL_STRUCTURE, LIVER_CODE, None, (221, 130, 101)),
    SegmentSpec(2, "Hepatic vessels", ANATOMICAL_STRUCTURE, BLOOD_VESSEL_CODE, LIVER_CODE,
                (0, 151, 206)),
    SegmentSpec(3, "Liver tumor", ALTERED_STRUCTURE, NEOPLASM_CODE, LIVER_CODE, (144, 238, 144)),
)
TUMOR_SPEC = SEGMENTS[2]  # per-lesion segments carry the tumor's terminology
LESION_COLOR = (230, 200, 60)
LONG_AXIS_COLOR = (1.0, 0.9, 0.2)  # diameter lines: longest axial, its perpendicular
SHORT_AXIS_COLOR = (0.3, 0.9, 1.0)

