"""Segmentation metrics of ``liverlvt evaluate`` (numpy label maps, physical spacing in mm).

Arrays are in SimpleITK's array order (z, y, x), so ``spacing_zyx`` is ``image.GetSpacing()``
reversed. Classes are scored as binary masks with the label hierarchy of the network:

    liver  = labels in {1, 2, 3}  (the whole liver, vessels and tumors included)
    vessel = labels == 2
    tumor  = labels == 3

Definitions (P prediction, R reference, voxel counts; TN counted over the whole array):

    dice         2|P∩R| / (|P|+|R|)          1 when both are empty, 0 when only one is
    voe          1 - |P∩R| / |P∪R|            0 when both are empty, 1 when only one is
    accuracy     (TP+TN) / N                  (voxel accuracy; dominated by background)
    sensitivity  |P∩R| / |R|                  None when R is empty
    precision    |P∩R| / |P|                  None when P is empty
    hd95_mm      95th-percentile symmetric Hausdorff distance of the surfaces (as MONAI's
                 compute_hausdorff_distance: max of the two directed 95th percentiles of the
                 distances between surface voxels), None when P or R is empty
    nsd          normalized surface Dice at a tolerance (as MONAI's compute_surface_dice:
                 share of both surfaces' voxels within the tolerance of the other surface),
                 None when P or R is empty. Tolerances of the LVT paper: liver 7 mm, vessel
                 and tumor 3 mm.
    Both come from one call of MONAI's surface-distance code per class (on the crop around
    P ∪ R), with the physical spacing in array (z, y, x) order.

Class records (:func:`score_class`) for an *empty reference* (e.g. ircadb-1.7, whose tumor class
is annotated but holds no tumor) carry ``reference_empty: true`` and leave dice, voe,
sensitivity, hd95_mm and nsd as None (not averaged): what is meaningful there is the false
positive volume ``fp_volume_ml`` and the lesion precision (0 when anything was predicted).

Lesions (tumor class): 26-connected components (cc3d) of R and P. A reference lesion is *found*
when more than 10 % of its voxels are predicted tumor; a predicted lesion is *correct* when more
than 10 % of its voxels are reference tumor. ``lesion_sensitivity`` = found / reference lesions
(None without reference lesions), ``lesion_precision`` = correct / predicted lesions (None
without predicted lesions). The ``_lits`` variants use the LiTS 50 % rule instead: a lesion
counts when the intersection over union with the union of the components of the other map that
touch it exceeds 0.5.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from ..core.labels import LIVER, TUMOR, VESSEL

CLASSES = ("liver", "vessel", "tumor")
NSD_TOLERANCE_MM = {"liver": 7.0, "vessel": 3.0, "tumor": 3.0}
DETECTION_FRACTION = 0.10  # a reference tumor is found when > 10 % of it is predicted
LITS_IOU = 0.5  # LiTS rule: intersection over union > 50 %


def class_mask(labels: np.ndarray, name: str) -> np.ndarray:
    """Binary mask of class ``name`` in a label map 0..3 (liver = the whole liver 1..3)."""
    labels = np.asarray(labels)
    if name == "liver":
        return labels >= LIVER
    if name == "vessel":
        return labels == VESSEL
    if name == "tumor":
        return labels == TUMOR
    raise ValueError(f"unknown class '{name}' (use one of {CLASSES})")


def voxel_ml(spacing_zyx: Sequence[float]) -> float:
    return float(np.prod([float(s) for s in spacing_zyx])) / 1000.0


# ----------------------------------------------------------------------------- overlap
def confusion(pred: np.ndarray, ref: np.ndarray) -> Dict[str, int]:
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    tp = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    fp, fn = n_pred - tp, n_ref - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(pred.size) - tp - fp - fn}


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient; 1.0 when both masks are empty, 0.0 when only one is."""
    c = confusion(pred, ref)
    denominator = 2 * c["tp"] + c["fp"] + c["fn"]
    return 1.0 if denominator == 0 else 2.0 * c["tp"] / denominator


def voe(pred: np.ndarray, ref: np.ndarray) -> float:
    """Volumetric overlap error 1 - Jaccard; 0.0 when both masks are empty."""
    c = confusion(pred, ref)
    union = c["tp"] + c["fp"] + c["fn"]
    return 0.0 if union == 0 else 1.0 - c["tp"] / union


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> Dict[str, Optional[float]]:
    c = confusion(pred, ref)
    n_pred, n_ref, union = c["tp"] + c["fp"], c["tp"] + c["fn"], c["tp"] + c["fp"] + c["fn"]
    total = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    return {
        "dice": 1.0 if union == 0 else 2.0 * c["tp"] / (n_pred + n_ref),
        "voe": 0.0 if union == 0 else 1.0 - c["tp"] / union,
        "accuracy": (c["tp"] + c["tn"]) / total if total else 1.0,
        "sensitivity": c["tp"] / n_ref if n_ref else None,
        "precision": c["tp"] / n_pred if n_pred else None,
    }


# ----------------------------------------------------------------------------- surfaces
def _crop_pair(pred: np.ndarray, ref: np.ndarray, margin: int = 2):
    """Both masks cropped to the box of their union (+ margin): same distances, less work."""
    union = pred | ref
    coords = [np.flatnonzero(union.any(axis=tuple(j for j in range(union.ndim) if j != i)))
              for i in range(union.ndim)]
    sl = tuple(slice(max(0, int(c[0]) - margin), int(c[-1]) + 1 + margin) for c in coords)
    return pred[sl], ref[sl]


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float]):
    """(distances of P's surface voxels to R's surface, of R's to P's) in mm, with MONAI's
    edge / surface-distance code (the one behind compute_hausdorff_distance and
    compute_surface_dice); None when either mask is empty. Computed once, both metrics use it."""
    import torch
    from monai.metrics.utils import get_edge_surface_distance

    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if not pred.any() or not ref.any():
        return None
    pred, ref = _crop_pair(pred, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, distances, _ = get_edge_surface_distance(
            torch.from_numpy(np.ascontiguousarray(pred)), torch.from_numpy(np.ascontiguousarray(ref)),
            distance_metric="euclidean", spacing=[float(s) for s in spacing_zyx], symmetric=True)
    return tuple(np.asarray(d.detach().cpu().numpy(), np.float64).ravel() for d in distances)


def hd95_from(distances, percentile: float = 95.0) -> Optional[float]:
    """Symmetric percentile Hausdorff distance: max of the two directed percentiles (MONAI's
    definition; linear interpolation as torch.quantile)."""
    if distances is None or any(d.size == 0 for d in distances):
        return None
    return _finite(max(np.percentile(d, percentile) for d in distances))


def nsd_from(distances, tolerance_mm: float) -> Optional[float]:
    """Share of both surfaces' voxels within ``tolerance_mm`` of the other surface."""
    if distances is None:
        return None
    total = sum(d.size for d in distances)
    if total == 0:
        return None
    return float(sum(int(np.count_nonzero(d <= tolerance_mm)) for d in distances) / total)


def _finite(value) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def hd95(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float],
         percentile: float = 95.0) -> Optional[float]:
    """Symmetric 95th-percentile Hausdorff distance (mm) between the mask surfaces;
    None when either mask is empty."""
    return hd95_from(surface_distances(pred, ref, spacing_zyx), percentile)


def nsd(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float],
        tolerance_mm: float) -> Optional[float]:
    """Normalized surface Dice at ``tolerance_mm``; None when either mask is empty."""
    return nsd_from(surface_distances(pred, ref, spacing_zyx), tolerance_mm)


# ----------------------------------------------------------------------------- lesions
def components(mask: np.ndarray):
    """26-connected components: (label array, count)."""
    import cc3d

    cc, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=np.uint8),
                                      connectivity=26, return_N=True)
    return cc, int(n)


def _matches(cc_a: np.ndarray, n_a: int, cc_b: np.ndarray, mask_b: np.ndarray):
    """For each component of A: (fraction of it inside B, IoU with the union of the B
    components it touches)."""
    if n_a == 0:
        return np.zeros(0), np.zeros(0)
    sizes = np.bincount(cc_a.ravel(), minlength=n_a + 1)[1:]
    inside = np.bincount(cc_a[mask_b].ravel(), minlength=n_a + 1)[1:]
    fraction = inside / np.maximum(sizes, 1)
    b_sizes = np.bincount(cc_b.ravel())
    touching = (cc_a > 0) & (cc_b > 0)
    partners_size = np.zeros(n_a + 1)
    if touching.any():
        pairs = np.unique(np.stack([cc_a[touching], cc_b[touching]]).astype(np.int64), axis=1)
        partners_size = np.bincount(pairs[0], weights=b_sizes[pairs[1]], minlength=n_a + 1)
    union = sizes + partners_size[1:] - inside
    iou = np.where(union > 0, inside / np.maximum(union, 1), 0.0)
    return fraction, iou


def lesion_detection(pred: np.ndarray, ref: np.ndarray,
                     min_fraction: float = DETECTION_FRACTION,
                     lits_iou: float = LITS_IOU) -> Dict[str, Optional[float]]:
    """Lesion-wise detection counts and rates (see the module docstring for the rules)."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    cc_r, n_r = components(ref)
    cc_p, n_p = components(pred)
    frac_r, iou_r = _matches(cc_r, n_r, cc_p, pred)
    frac_p, iou_p = _matches(cc_p, n_p, cc_r, ref)
    found, correct = int((frac_r > min_fraction).sum()), int((frac_p > min_fraction).sum())
    found_lits, correct_lits = int((iou_r > lits_iou).sum()), int((iou_p > lits_iou).sum())
    return {
        "reference_lesions": n_r, "predicted_lesions": n_p,
        "lesions_found": found, "lesions_missed": n_r - found,
        "false_positive_lesions": n_p - correct,
        "lesion_sensitivity": found / n_r if n_r else None,
        "lesion_precision": correct / n_p if n_p else None,
        "lesion_sensitivity_lits": found_lits / n_r if n_r else None,
        "lesion_precision_lits": correct_lits / n_p if n_p else None,
    }


# ----------------------------------------------------------------------------- centrelines
def centre_voxels(mask: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Centre-line voxels of a mask: the ridge of its Euclidean distance map (voxels whose
    distance to the outside is maximal in their 3x3x3 neighbourhood) — one or two voxels across
    a tube, the medial-axis approximation clDice needs (Shit et al., CVPR 2021)."""
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    edt = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    return mask & (edt >= ndimage.maximum_filter(edt, size=3))


def centreline_metrics(pred: np.ndarray, ref: np.ndarray,
                       spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> Dict[str, Optional[float]]:
    """clDice (Shit et al., CVPR 2021): topology precision = share of the predicted skeleton
    inside the reference, sensitivity (skeleton recall) = share of the reference skeleton
    inside the prediction, clDice their harmonic mean. For tubular classes (vessels), where a
    missed thin branch costs little Dice but breaks the tree."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if not ref.any() or not pred.any():
        return {"cldice": None if not ref.any() else 0.0, "skeleton_recall": None if not ref.any() else 0.0,
                "skeleton_precision": None}
    p, r = _crop_pair(pred, ref)
    sp, sr = centre_voxels(p, spacing_zyx), centre_voxels(r, spacing_zyx)
    precision = float((sp & r).sum() / max(1, sp.sum()))
    recall = float((sr & p).sum() / max(1, sr.sum()))
    cl = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"cldice": cl, "skeleton_recall": recall, "skeleton_precision": precision}


# ----------------------------------------------------------------------------- per class / map
def score_class(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float],
                tolerance_mm: float, lesions: bool = False,
                centrelines: bool = False) -> Dict[str, Optional[float]]:
    """Every metric of one class (binary masks) as a JSON-ready dict."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    ml = voxel_ml(spacing_zyx)
    c = confusion(pred, ref)
    record: Dict[str, Optional[float]] = dict(overlap_metrics(pred, ref))
    distances = surface_distances(pred, ref, spacing_zyx)
    record["hd95_mm"] = hd95_from(distances)
    record["nsd"] = nsd_from(distances, tolerance_mm)
    record["nsd_tolerance_mm"] = float(tolerance_mm)
    record["reference_ml"] = (c["tp"] + c["fn"]) * ml
    record["predicted_ml"] = (c["tp"] + c["fp"]) * ml
    record["fp_volume_ml"] = c["fp"] * ml
    record["fn_volume_ml"] = c["fn"] * ml
    record["volume_diff_percent"] = (100.0 * (c["fp"] - c["fn"]) / (c["tp"] + c["fn"])
                                     if c["tp"] + c["fn"] else None)
    record["reference_empty"] = not ref.any()
    if record["reference_empty"]:
        # no structure to overlap: Dice & co. would only say "something was predicted"
        for key in ("dice", "voe", "sensitivity"):
            record[key] = None
        record["precision"] = 0.0 if pred.any() else None
    if lesions:
        record.update(lesion_detection(pred, ref))
    if centrelines:
        record.update(centreline_metrics(pred, ref, spacing_zyx))
    return record


def score_labels(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float],
                 classes: Iterable[str] = CLASSES,
                 tolerances_mm: Optional[Dict[str, float]] = None) -> Dict[str, Dict]:
    """Label maps 0..3 on the same grid -> {class: record} for the requested classes."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    tolerances = dict(NSD_TOLERANCE_MM, **(tolerances_mm or {}))
    return {name: score_class(class_mask(pred, name), class_mask(ref, name), spacing_zyx,
                              tolerances[name], lesions=(name == "tumor"),
                              centrelines=(name == "vessel"))
            for name in CLASSES if name in set(classes)}


def summarize(values: Iterable[Optional[float]]) -> Dict[str, Optional[float]]:
    """mean, sd (sample, ddof=1; 0 for one value) and n of the non-None values."""
    xs = np.array([float(v) for v in values if v is not None and not isinstance(v, bool)
                   and math.isfinite(float(v))])
    if xs.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(xs.mean()), "sd": float(xs.std(ddof=1)) if xs.size > 1 else 0.0,
            "n": int(xs.size)}


def relative_difference_percent(a: float, b: float) -> Optional[float]:
    """|a - b| relative to their mean, in percent (None when both are 0)."""
    mean = (a + b) / 2.0
    return 100.0 * abs(a - b) / mean if mean > 0 else None
