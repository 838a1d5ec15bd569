"""Liver volumetry from a label map: whole liver, parenchyma, vessels, lesions, tumor burden."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..core.errors import InputError
from ..core.labels import LIVER, TUMOR, VESSEL


def volumes(labels: np.ndarray, voxel_ml: float, lesions: Sequence[Dict] = ()) -> Dict:
    """Volumes in mL. Whole liver = labels 1 U 2 U 3. Tumor volume and burden count tumors and
    indeterminate lesions, not cysts (a cyst is part of the liver volume but not tumor burden)."""
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=4)[:4]
    if counts[LIVER] == 0:
        raise InputError("the label map has no liver (no voxel of label 1)",
                         "give a label map with the liver labelled 1 (0 bg, 1 liver, 2 vessel, "
                         "3 tumor)")
    whole = float(counts[LIVER] + counts[VESSEL] + counts[TUMOR]) * voxel_ml
    tumor_ml = float(sum(les["volume_ml"] for les in lesions if les.get("classification") != "cyst"))
    cyst_ml = float(sum(les["volume_ml"] for les in lesions if les.get("classification") == "cyst"))
    return {
        "liver": {"volume_ml": whole, "parenchyma_volume_ml": float(counts[LIVER]) * voxel_ml},
        "vessels": {"volume_ml": float(counts[VESSEL]) * voxel_ml},
        "tumor_volume_ml": tumor_ml,
        "cyst_volume_ml": cyst_ml,
        "lesion_volume_ml": float(counts[TUMOR]) * voxel_ml,
        "tumor_burden_percent": 100.0 * tumor_ml / whole,
    }
