"""Liver volumetry from a label map: whole liver, parenchyma, vessels, lesions, tumor burden."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from ..core.errors import InputError
from ..core.labels import LIVER, TUMOR, VESSEL


def label_counts(labels: np.ndarray) -> np.ndarray:
    """Voxel counts of labels 0-3 (one comparison pass per label, no int64 copy of the volume
    as ``np.bincount`` makes)."""
    lab = np.asarray(labels)
    fg = [int(np.count_nonzero(lab == k)) for k in (LIVER, VESSEL, TUMOR)]
    return np.array([lab.size - sum(fg), *fg], np.int64)


def volumes(labels: np.ndarray, voxel_ml: float, lesions: Sequence[Dict] = (),
            counts: Optional[np.ndarray] = None) -> Dict:
    """Volumes in mL. Whole liver = labels 1 U 2 U 3. Tumor volume and burden count tumors and
    indeterminate lesions, not cysts (a cyst is part of the liver volume but not tumor burden).
    ``counts``: :func:`label_counts` of ``labels`` when already known (then ``labels`` is not
    read again)."""
    counts = label_counts(labels) if counts is None else counts
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
