"""Training data: manifest cases -> arrays on a model stage's grid, cached as compressed npz.

Every array goes through the same preprocessing as inference (:func:`preprocess.to_model_grid`:
canonical LPS orientation, linear resampling of the CT at the stage spacing; labels follow by
nearest neighbour on the same grid). A stage with a liver ROI (the fine stage of the cascade)
is trained on the reference liver's bounding box grown by ``roi_margin_mm`` (inference crops to
the coarse stage's liver box + its margin, so training sees a slightly larger context).

Cached case (``<cache>/<stage>/<id>.npz``):
    image    uint8 HU code: HU = HU_STORE_MIN + HU_STEP * code, clipped to [HU_STORE_MIN,
             HU_STORE_MAX] (random windowing stays inside; 4 HU steps are below CT noise)
    labels   uint8 0..3 (our convention)
    annotated uint8[3] (liver, vessel, tumor) - 1 where the class is really annotated
    tissue   uint8 synthesis tissue classes (label-only IRCAD maps; image is then absent)
    spacing  float[3]
    labels_from  id of the labelled phase partner whose labels a CT-only phase borrows (the
             config's ``phase_partner_labels``; :mod:`.partners`)
    transfer  how they were moved: 'identity' or 'registered' (``phase_partner_registration``)

Label-only IRCAD cases (``labels_only/ircadb-1.N``) have no CT: their ``multilabel`` map is
turned into tissue classes (:data:`TISSUE_CLASSES`) from which :mod:`synthesis` draws CT-like
images on the fly.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from ..core.labels import CHANNELS, LIVER, TUMOR, VESSEL
from ..core.manifest import labelled_cases, partner_labelled_cases
from ..segmentation.inputs import stage_inputs_of
from .partners import MIN_VISIBLE_HU, PARTNER_BODY_DICE_MIN, transfer_partner_labels, tumor_contrasts, tumors_visible

_logger = logging.getLogger("liverlvt")

HU_STORE_MIN = -400
HU_STORE_MAX = 600
HU_STEP = 4


def encode_hu(hu: np.ndarray) -> np.ndarray:
    """HU -> uint8 storage code (4 HU steps from HU_STORE_MIN)."""
    hu = np.clip(np.asarray(hu, np.float32), HU_STORE_MIN, HU_STORE_MAX)
    return np.round((hu - HU_STORE_MIN) / HU_STEP).astype(np.uint8)


def decode_hu(code) -> np.ndarray:
    return np.asarray(code, np.float32) * HU_STEP + HU_STORE_MIN

# synthesis tissue classes (index -> name); multilabel names map onto them by keyword
TISSUE_CLASSES = ("air", "body", "bone", "liver", "vein", "artery", "tumor", "cyst", "kidney",
                  "spleen", "lung", "bile", "organ", "metal")
_KEYWORDS = (  # first match wins
    ("livertumor", "tumor"), ("metastasectomie", "tumor"), ("cyst", "cyst"), ("kyste", "cyst"),
    ("skin", "body"), ("bone", "bone"), ("liver", "liver"), ("artery", "artery"),
    ("portalvein", "vein"), ("venacava", "vein"), ("venoussystem", "vein"), ("kidney", "kidney"),
    ("spleen", "spleen"), ("lung", "lung"), ("gallbladder", "bile"), ("biliary", "bile"),
    ("metal", "metal"), ("stone", "metal"))


def tissue_of(name: str) -> str:
    low = name.lower()
    for key, tissue in _KEYWORDS:
        if key in low:
            return tissue
    return "organ"


def annotated_vector(entry: dict) -> np.ndarray:
    annotated = set(entry.get("annotated") or [])
    return np.array([name in annotated for name in CHANNELS], np.uint8)


def multi_hot(labels: np.ndarray) -> np.ndarray:
    """Label map 0..3 -> multi-hot [3, ...] with the hierarchy liver ⊇ vessel ∪ tumor."""
    labels = np.asarray(labels)
    return np.stack([labels > 0, labels == VESSEL, labels == TUMOR]).astype(np.uint8)


def _liver_box(labels: np.ndarray, spacing_zyx, margin_mm: float):
    from ..core.preprocess import bounding_box

    margin = [int(np.ceil(margin_mm / s)) for s in spacing_zyx]
    return bounding_box(labels >= LIVER, margin)


def prepare_arrays(ct, labels, spacing_mm, roi_margin_mm: Optional[float] = None) -> Dict[str, np.ndarray]:
    """CT + label sitk images -> stage-grid arrays (optionally cropped to the liver box)."""
    import SimpleITK as sitk

    from ..core.preprocess import canonical, labels_to_grid, to_model_grid

    grid = to_model_grid(ct, spacing_mm)
    lab = labels_to_grid(canonical(labels), grid) if labels is not None else None
    image = sitk.GetArrayFromImage(grid)
    lab_arr = sitk.GetArrayFromImage(lab) if lab is not None else None
    spacing_zyx = tuple(reversed(grid.GetSpacing()))
    if roi_margin_mm is not None and lab_arr is not None:
        box = _liver_box(lab_arr, spacing_zyx, roi_margin_mm)
        if box is not None:
            sl = tuple(slice(lo, hi) for lo, hi in zip(*box))
            image, lab_arr = image[sl], lab_arr[sl]
    out = {"image": encode_hu(image),
           "spacing": np.array(spacing_zyx, np.float32)}
    if lab_arr is not None:
        out["labels"] = lab_arr.astype(np.uint8)
    return out


def prepare_label_only(folder: Path, spacing_mm, roi_margin_mm: Optional[float] = None):
    """Label-only IRCAD map -> tissue classes + our labels on the stage grid."""
    import SimpleITK as sitk

    from ..core.preprocess import canonical, labels_to_grid, resampled_grid

    multi = canonical(sitk.ReadImage(str(folder / "multilabel.nii.gz"), sitk.sitkUInt8))
    names = json.loads((folder / "multilabel.json").read_text())["labels"]
    lut = np.zeros(256, np.uint8)
    for value, name in names.items():
        lut[int(value)] = TISSUE_CLASSES.index(tissue_of(name))
    grid = resampled_grid(multi, spacing_mm)
    tissue = lut[sitk.GetArrayFromImage(labels_to_grid(multi, grid))]
    ours = canonical(sitk.ReadImage(str(folder / "labels.nii.gz"), sitk.sitkUInt8))
    lab = sitk.GetArrayFromImage(labels_to_grid(ours, grid))
    spacing_zyx = tuple(reversed(grid.GetSpacing()))
    if roi_margin_mm is not None:
        box = _liver_box(lab, spacing_zyx, roi_margin_mm)
        if box is not None:
            sl = tuple(slice(lo, hi) for lo, hi in zip(*box))
            tissue, lab = tissue[sl], lab[sl]
    return {"tissue": tissue, "labels": lab, "spacing": np.array(spacing_zyx, np.float32),
            "annotated": np.ones(3, np.uint8)}


def build_cache(manifest: dict, cache: Path, stages: Iterable[dict], synth: bool = True,
                partners: bool = False, log=_logger.info, register: bool = False) -> Path:
    """Write ``cache/<stage>/<id>.npz`` for every labelled case (and label-only map; with
    ``partners``, every CT-only phase whose labelled partner shares its frame, its labels moved
    by a registration inside the liver with ``register``: :mod:`.partners`; a borrowed phase
    cached the other way is cached again)."""
    root = Path(manifest["_root"])
    cache = Path(cache)
    entries = labelled_cases(manifest) + (partner_labelled_cases(manifest) if partners else [])
    for stage in stages:
        folder = cache / stage["name"]
        folder.mkdir(parents=True, exist_ok=True)
        margin = stage.get("train_roi_margin_mm") if stage.get("roi") else None
        for entry in entries:
            target = folder / f"{entry['id']}.npz"
            if entry.get("labels_from") and target.is_file() and _transfer_of(target) != _TRANSFER[register]:
                target.unlink(missing_ok=True)  # folds trained side by side may race here
                (folder / "vesselness" / target.name).unlink(missing_ok=True)  # built on its liver
            if not target.is_file():
                _cache_case(root, entry, target, stage["spacing_mm"], margin, log, register)
        only = root / "labels_only"
        if synth and only.is_dir():
            for sub in sorted(p for p in only.iterdir() if (p / "multilabel.nii.gz").is_file()):
                target = folder / f"synth-{sub.name}.npz"
                if target.is_file():
                    continue
                arrays = prepare_label_only(sub, stage["spacing_mm"], margin)
                _save(target, **arrays)
                log(f"cached {stage['name']}/synth-{sub.name} {arrays['tissue'].shape}")
        if "vesselness" in stage_inputs_of(stage):
            cache_vesselness(folder, log)
    return cache


_TRANSFER = {False: "identity", True: "registered"}  # how a borrowed phase's labels were moved


def _save(target: Path, **arrays) -> None:
    """Write one cache file atomically (a hidden temporary beside it, then renamed): folds trained
    side by side build the same cache, and none may read another's half-written file."""
    from ..core.files import atomic_path

    with atomic_path(target) as tmp:
        np.savez_compressed(tmp, **arrays)


def _cached_files(folder: Path) -> List[Path]:
    """The cache files of a folder, without the hidden temporaries of a writer at work."""
    return sorted(p for p in Path(folder).glob("*.npz") if not p.name.startswith("."))


def _transfer_of(path: Path) -> str:
    with np.load(path) as data:
        return str(data["transfer"]) if "transfer" in data.files else _TRANSFER[False]


def _cache_case(root: Path, entry: dict, target: Path, spacing, margin, log, register: bool = False) -> None:
    from ..core.io import read_ct, read_labels

    ct = read_ct(root / entry["ct"])
    annotated = annotated_vector(entry)
    tumor = CHANNELS.index("tumor")
    if entry.get("labels_from"):
        labels = transfer_partner_labels(ct, read_ct(root / entry["ct_from"]), read_labels(root / entry["labels"]),
                                         register=register)
        if labels is None:
            log(f"not cached {target.parent.name}/{entry['id']}: its body outline does not overlap its "
                f"partner {entry['labels_from']}'s (Dice < {PARTNER_BODY_DICE_MIN}), so the partner's "
                "labels would need a registration")
            return
        contrasts = tumor_contrasts(ct, labels) if register and annotated[tumor] else []
        if contrasts and not tumors_visible(contrasts):
            annotated[tumor] = 0
            log(f"{entry['id']}: a tumor moved from {entry['labels_from']} reads like liver here "
                f"(ring contrasts {', '.join(f'{c:+.0f}' for c in contrasts)} HU, "
                f"under {MIN_VISIBLE_HU:.0f}): its tumor label is not taught")
    else:
        labels = read_labels(root / entry["labels"], ct)
    arrays = prepare_arrays(ct, labels, spacing, margin)
    arrays["annotated"] = annotated
    if entry.get("labels_from"):
        arrays["labels_from"] = np.array(entry["labels_from"])
        arrays["transfer"] = np.array(_TRANSFER[register])
    _save(target, **arrays)
    log(f"cached {target.parent.name}/{entry['id']} {arrays['image'].shape}")


def slice_spacing_mm(root: Path, entry: Optional[dict]) -> Optional[float]:
    """A manifest case's slice spacing in mm (the spacing of its CT's index axis nearest the
    patient's z, from the file's header), None without an entry or a readable single-file CT."""
    from ..core.errors import InputError
    from ..core.image_check import header_info

    path = Path(root) / entry["ct"] if entry and entry.get("ct") else None
    if path is None or not path.is_file():
        return None
    try:
        reader = header_info(path)
    except InputError:
        return None
    direction = np.asarray(reader.GetDirection(), float).reshape(3, 3)
    return float(reader.GetSpacing()[int(np.argmax(np.abs(direction[2])))])


def _read_npz(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _case_hu(case: dict) -> np.ndarray:
    """A cached case's HU: the CT, or for a label-only map one fixed synthetic rendering (seed 0:
    the geometry of its veins is what the vesselness channel carries; the sampler draws new
    intensities on the fly)."""
    if "image" in case:
        return decode_hu(case["image"])
    import torch

    from .synthesis import synthesize

    gen = torch.Generator().manual_seed(0)
    return synthesize(torch.from_numpy(case["tissue"].astype(np.int64)), gen).numpy()


def cache_vesselness(folder: Path, log=_logger.info) -> None:
    """``folder/vesselness/<id>.npz`` (uint8 code of the [0, 1] channel, 1/255 steps) for every
    cached case of the stage that lacks one: the vesselness input inside the reference liver
    (:func:`..segmentation.inputs.vesselness_channel`)."""
    from ..segmentation.inputs import vesselness_channel

    out = Path(folder) / "vesselness"
    out.mkdir(parents=True, exist_ok=True)
    for path in _cached_files(folder):
        target = out / path.name
        if target.is_file():
            continue
        case = _read_npz(path)
        channel = vesselness_channel(_case_hu(case), case["labels"] > 0, case["spacing"])
        _save(target, vesselness=np.round(channel * 255).astype(np.uint8))
        log(f"cached vesselness {path.parent.name}/{path.stem}")


def load_cached(folder: Path, include: Optional[Iterable[str]] = None, exclude: Iterable[str] = (),
                synth: bool = True, extras: Iterable[str] = (), partners: bool = False,
                partner_classes: Optional[Iterable[str]] = None) -> List[dict]:
    """Read the cached cases of one stage (ids in ``include`` if given, minus ``exclude``), with
    the cached ``extras`` input channels (e.g. ``["vesselness"]``: ``case["vesselness"]``
    float32 in [0, 1]); phases labelled from their partner only with ``partners``, supervised
    only on ``partner_classes`` when given (e.g. ``["liver"]``: a small tumor moved by breathing
    between the phases is not taught)."""
    keep = annotated_vector({"annotated": list(partner_classes)}) if partner_classes is not None else None
    include = set(include) if include is not None else None
    exclude = set(exclude)
    cases = []
    for path in _cached_files(folder):
        cid = path.stem
        is_synth = cid.startswith("synth-")
        if is_synth and not synth:
            continue
        if not is_synth and ((include is not None and cid not in include) or cid in exclude):
            continue
        case = _read_npz(path)
        if "labels_from" in case and not partners:
            continue
        if "labels_from" in case and keep is not None:
            case["annotated"] = case["annotated"] & keep
        for name in extras:
            extra = Path(folder) / name / path.name
            if not extra.is_file():
                raise FileNotFoundError(f"no cached '{name}' channel for {cid} ({extra}); "
                                        "rebuild the cache with the manifest")
            with np.load(extra) as data:
                case[name] = data[name].astype(np.float32) / 255.0
        case["id"] = cid
        cases.append(case)
    return cases
