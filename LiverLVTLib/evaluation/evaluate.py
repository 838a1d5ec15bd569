"""Score predicted liver / vessel / tumor labels against reference labels.

Two modes:

    liverlvt evaluate PRED REF [--out DIR]
        one pair of label maps on the same grid; every class is scored (``--classes`` to choose).
    liverlvt evaluate --manifest FILE [--model DIR] [--out DIR] [--cases ID ...] [--pred-dir DIR]
        segments every labelled case of a data manifest (or reuses ``PRED_DIR/<id>/labels.nii.gz``)
        and scores only the classes the case annotates; the prediction of each segmented case is
        saved as ``OUT/<id>/labels.nii.gz``. Phase pairs (an entry whose ``pair_of`` names the
        other phase of the same study) get the relative difference of their predicted liver
        volumes; CT-only members of a pair are segmented for this (never scored). A case the
        model's card lists as a training case is flagged (``seen_in_training``, a * in the table).
    liverlvt evaluate --manifest FILE --folds MODEL_DIR [MODEL_DIR ...] [--out DIR]
        k-fold cross-validation: each case is segmented by a fold model that never trained on it
        or its phase partner (:mod:`LiverLVTLib.evaluation.crossval`); one pooled table.

The engine is :func:`evaluate_pair` and :func:`evaluate_manifest` (they return the result and
never print; per-case lines go to a ``log`` callback); :mod:`LiverLVTLib.cli.evaluate` is the
command. Outputs ``OUT/metrics.json`` and ``OUT/metrics.md`` (per case rows, mean ± sd, tumor rows per
phase, phase pairs). Metric definitions and the empty-reference rules: :mod:`LiverLVTLib.evaluation.metrics`.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..core import io
from ..core.errors import InputError
from ..core.manifest import is_labelled, load_manifest
from ..core.options import SegmentOptions
from .metrics import (
    CLASSES,
    NSD_TOLERANCE_MM,
    class_mask,
    relative_difference_percent,
    score_labels,
    summarize,
    voxel_ml,
)

log = logging.getLogger("liverlvt")

SUMMARY_KEYS = ("dice", "voe", "accuracy", "sensitivity", "precision", "hd95_mm", "nsd",
                "volume_diff_percent", "fp_volume_ml", "lesion_sensitivity", "lesion_precision",
                "lesion_sensitivity_lits", "lesion_precision_lits")
PHASE_ORDER = ("arterial", "portal-venous", "equilibrium")


# ----------------------------------------------------------------------------- helpers
def _clean(value):
    """JSON-ready: numpy scalars -> Python, NaN/Inf -> None, floats rounded."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return round(value, 6) if math.isfinite(value) else None
    return value


def spacing_zyx(image: sitk.Image):
    return tuple(float(s) for s in reversed(image.GetSpacing()))


def score_images(pred: sitk.Image, ref: sitk.Image, classes=CLASSES) -> Dict[str, Dict]:
    """Score two label images on the same grid (InputError when the grids differ)."""
    io.require_same_grid(pred, ref)
    return score_labels(sitk.GetArrayViewFromImage(pred), sitk.GetArrayViewFromImage(ref),
                        spacing_zyx(ref), classes)


def summarize_cases(records: List[Dict[str, Dict]]) -> Dict[str, Dict]:
    """{"mean": {cls: {key: v}}, "sd": {...}, "n": {...}} over per-case class records."""
    out = {"mean": {}, "sd": {}, "n": {}}
    for name in CLASSES:
        rows = [r[name] for r in records if name in r]
        if not rows:
            continue
        for part in out.values():
            part[name] = {}
        for key in SUMMARY_KEYS:
            if not any(key in row for row in rows):
                continue
            stats = summarize(row.get(key) for row in rows)
            out["mean"][name][key] = stats["mean"]
            out["sd"][name][key] = stats["sd"]
            out["n"][name][key] = stats["n"]
    return out


def fmt(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _fmt_stat(mean, sd, digits=3) -> str:
    return "–" if mean is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


CELLS = (("dice", "Dice", 3), ("hd95_mm", "HD95 mm", 1), ("nsd", "NSD", 3))
LESION_CELLS = (("lesion_sensitivity", "lesion sens", 2), ("lesion_precision", "lesion prec", 2),
                ("fp_volume_ml", "FP mL", 2))


def _columns(classes) -> List[tuple]:
    cols = []
    for name in classes:
        cells = CELLS + (LESION_CELLS if name == "tumor" else ())
        cols.extend((name, key, f"{name} {title}", digits) for key, title, digits in cells)
    return cols


def markdown(result: Dict) -> str:
    """Markdown tables of a metrics.json result (per case, mean ± sd, per phase, pairs)."""
    cases = result.get("cases", {})
    info = result.get("case_info", {})
    classes = [c for c in CLASSES if any(c in r for r in cases.values())]
    cols = _columns(classes)
    model = result.get("model")
    title = ("cross-validation of " + ", ".join(model)) if isinstance(model, list) else model
    lines = [f"# LiverLVT evaluation{(' - ' + title) if title else ''}", ""]
    if result.get("folds"):
        lines += ["Each case is segmented by a fold model that never trained on it or on its phase "
                  "partner: " + "; ".join(f"{name}: {', '.join(ids)}"
                                          for name, ids in result["folds"].items()) + ".", ""]
    seen = [cid for cid in cases if info.get(cid, {}).get("seen_in_training")]
    if seen:
        lines += [f"**Not held out:** {', '.join(seen)} (marked *) were training cases of this model.", ""]
    if cases:
        lines += ["| case | phase | " + " | ".join(c[2] for c in cols) + " |",
                  "|---|---|" + "---|" * len(cols)]
        for cid, record in cases.items():
            cells = [fmt(record[name].get(key), d) if name in record else "n/a"
                     for name, key, _, d in cols]
            mark = " *" if cid in seen else ""
            lines.append(f"| {cid}{mark} | {info.get(cid, {}).get('phase', '')} | " + " | ".join(cells) + " |")
        mean, sd = result.get("mean", {}), result.get("sd", {})
        cells = [_fmt_stat(mean.get(name, {}).get(key), sd.get(name, {}).get(key), d)
                 for name, key, _, d in cols]
        lines.append("| **mean ± sd** | | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Only the classes a case annotates are scored (n/a otherwise). Empty "
                     "reference (annotated absence): Dice/HD95/NSD are not defined (–); see the "
                     "false-positive volume and lesion precision in metrics.json. NSD tolerance: "
                     + ", ".join(f"{k} {v:g} mm" for k, v in NSD_TOLERANCE_MM.items())
                     + ". Lesions found when > 10 % of a reference tumor is predicted "
                     "(LiTS 50 % IoU rule in metrics.json).")
        lines.append("")
    by_phase = result.get("by_phase", {})
    if any("tumor" in p.get("mean", {}) for p in by_phase.values()):
        tcols = _columns(["tumor"])
        lines += ["## Tumor by contrast phase", "",
                  "| phase | cases | " + " | ".join(c[2] for c in tcols) + " |",
                  "|---|---|" + "---|" * len(tcols)]
        for phase, part in by_phase.items():
            if "tumor" not in part.get("mean", {}):
                continue
            cells = [_fmt_stat(part["mean"]["tumor"].get(key), part["sd"]["tumor"].get(key), d)
                     for _, key, _, d in tcols]
            lines.append(f"| {phase} | {part['n_cases']} | " + " | ".join(cells) + " |")
        lines.append("")
    pairs = result.get("phase_pairs", [])
    if pairs:
        lines += ["## Phase pairs (predicted liver volume)", "",
                  "| case a | case b | liver a (mL) | liver b (mL) | difference (%) |",
                  "|---|---|---|---|---|"]
        for p in pairs:
            lines.append(f"| {p['a']} | {p['b']} | {fmt(p['liver_volume_a_ml'], 1)} | "
                         f"{fmt(p['liver_volume_b_ml'], 1)} | {fmt(p['liver_volume_diff_percent'], 2)} |")
        lines.append("")
    return "\n".join(lines)


def write_outputs(result: Dict, out_dir: Path) -> Path:
    out_dir = io.ensure_output_dir(out_dir)
    result = _clean(result)
    io.write_text(json.dumps(result, indent=1) + "\n", out_dir / "metrics.json")
    io.write_text(markdown(result) + "\n", out_dir / "metrics.md")
    return out_dir / "metrics.json"


# ----------------------------------------------------------------------------- single pair
def evaluate_pair(pred, ref, classes: Sequence[str] = CLASSES, out_dir=None) -> Dict:
    """Score a predicted label map (path or image) against a reference on the same grid; the
    metrics.json result (written to ``out_dir`` when given, with metrics.md)."""
    ref_image = ref if isinstance(ref, sitk.Image) else io.read_labels(ref)
    pred_image = pred if isinstance(pred, sitk.Image) else io.read_labels(pred)
    if not io.same_grid(pred_image, ref_image):
        raise InputError("the predicted labels do not lie on the reference grid (pred: "
                         + io.describe_grid(pred_image) + "; ref: " + io.describe_grid(ref_image) + ")",
                         "compare label maps of the same CT (same size, spacing, origin, direction)")
    scores = score_images(pred_image, ref_image, classes)
    result = {"cases": {"pair": scores}, "case_info": {"pair": {"prediction": str(pred),
                                                             "reference": str(ref)}}}
    result.update(summarize_cases([scores]))
    result = _clean(result)
    if out_dir:
        write_outputs(result, Path(out_dir))
    return result


# ----------------------------------------------------------------------------- manifest
def select_cases(manifest: Dict, wanted: Optional[List[str]]) -> List[Dict]:
    """Cases to evaluate: ``wanted`` (in manifest order) or every labelled case plus the CT-only
    partners of labelled phase-pair members."""
    by_id = {c["id"]: c for c in manifest["cases"]}
    if wanted:
        unknown = [w for w in wanted if w not in by_id]
        if unknown:
            raise InputError(f"case(s) {unknown} are not in the manifest",
                             "use ids listed in the manifest's 'cases'")
        chosen = set(wanted)
    else:
        chosen = {c["id"] for c in manifest["cases"] if is_labelled(c)}
        for c in manifest["cases"]:
            partner = c.get("pair_of")
            if partner in by_id and (c["id"] in chosen or partner in chosen):
                chosen |= {c["id"], partner}
    return [c for c in manifest["cases"] if c["id"] in chosen]


def phase_pairs(entries: List[Dict]) -> List[tuple]:
    """(a, b) per phase pair with both members in ``entries``: a = the partner named by
    ``pair_of``, b = the entry naming it; each pair once."""
    ids = {c["id"] for c in entries}
    pairs, seen = [], set()
    for c in entries:
        partner = c.get("pair_of")
        if partner and partner in ids and frozenset((c["id"], partner)) not in seen:
            seen.add(frozenset((c["id"], partner)))
            pairs.append((partner, c["id"]))
    return pairs


def _prediction(entry: Dict, root: Path, run: "_Run", model=None):
    """(label image, path, seconds or None) for one case: reused from ``pred_dir`` or segmented."""
    cid = entry["id"]
    if run.pred_dir:
        path = Path(run.pred_dir) / cid / "labels.nii.gz"
        if not path.is_file():
            raise InputError(f"no prediction for case '{cid}' at '{path}'",
                             "segment it first (liverlvt segment) or segment while evaluating")
        return io.read_labels(path), path, None
    from ..segmentation.pipeline import segment_ct

    ct = io.read_ct(root / entry["ct"])
    start = time.perf_counter()
    labels = segment_ct(ct, run.segment, **({"model_dir": model} if model else {}))
    seconds = time.perf_counter() - start
    case_dir = io.ensure_output_dir(run.out_dir / cid)
    path = io.write_image(labels, case_dir / "labels.nii.gz")
    return labels, path, seconds


def _models_for(entries: List[Dict], run: "_Run"):
    """(model name(s), {case id: {"path", "name", "seen"}}) for the cases to segment.

    One model (``segment.model_dir``): every case, flagged ``seen`` when the card lists it as a
    training case. Folds: each case by a fold that never saw it
    (:mod:`LiverLVTLib.evaluation.crossval`). Reused predictions (``pred_dir``): no model.
    """
    from ..segmentation.model import load_card
    from .crossval import assign_folds, load_folds, trained_cases

    if run.pred_dir:
        if run.folds:
            raise InputError("fold models and saved predictions exclude each other",
                             "segment with the fold models or score saved predictions, not both")
        return None, {}
    if run.folds:
        folds = load_folds(run.folds)
        assignment = assign_folds(entries, {name: f["trained"] for name, f in folds.items()})
        return list(folds), {cid: {"path": folds[name]["path"], "name": name, "seen": False}
                             for cid, name in assignment.items()}
    card = load_card(run.segment.model_dir)
    seen = trained_cases(card.card)
    return card.name, {e["id"]: {"path": run.segment.model_dir, "name": card.name, "seen": e["id"] in seen}
                       for e in entries}


@dataclass
class _Run:
    """One manifest evaluation: where to write, how to segment, folds or saved predictions."""

    out_dir: Path
    segment: SegmentOptions
    folds: Optional[Sequence] = None
    pred_dir: Optional[Path] = None


def _score_case(entry: Dict, root: Path, run: _Run, scorer: Dict) -> tuple:
    """(info record, class scores or None) of one case."""
    cid = entry["id"]
    reference = io.read_labels(root / entry["labels"]) if is_labelled(entry) else None
    pred, path, seconds = _prediction(entry, root, run, scorer.get("path"))
    liver_ml = float(np.count_nonzero(class_mask(sitk.GetArrayViewFromImage(pred), "liver"))) \
        * voxel_ml(spacing_zyx(pred))
    info = {"phase": entry.get("phase"), "annotated": list(entry.get("annotated") or []),
            "scored": reference is not None, "prediction": str(path),
            "predicted_liver_ml": liver_ml,
            "seconds": None if seconds is None else round(seconds, 1),
            "model": scorer.get("name"), "seen_in_training": scorer.get("seen")}
    if scorer.get("seen"):
        log.warning("case '%s' was in the training set of model '%s': its score is not a "
                    "held-out result", cid, scorer.get("name"))
    if reference is None:
        return info, None
    if not io.same_grid(pred, reference):
        raise InputError(f"the prediction of case '{cid}' ({path}) does not lie on its "
                         "reference grid (pred: " + io.describe_grid(pred) + "; ref: "
                         + io.describe_grid(reference) + ")",
                         "give predictions made on this case's CT")
    wanted = [c for c in CLASSES if c in set(entry["annotated"])]
    return info, score_images(pred, reference, wanted)


def _by_phase(cases: Dict, info: Dict) -> Dict:
    by_phase = {}
    phases = sorted({info[c]["phase"] or "unknown" for c in cases},
                    key=lambda p: (PHASE_ORDER.index(p) if p in PHASE_ORDER else 99, p))
    for phase in phases:
        ids = [c for c in cases if (info[c]["phase"] or "unknown") == phase]
        part = summarize_cases([cases[c] for c in ids])
        part["cases"], part["n_cases"] = ids, len(ids)
        by_phase[phase] = part
    return by_phase


def _pair_rows(entries: List[Dict], info: Dict) -> List[Dict]:
    rows = []
    for a, b in phase_pairs(entries):
        va, vb = info[a]["predicted_liver_ml"], info[b]["predicted_liver_ml"]
        rows.append({"a": a, "b": b, "phase_a": info[a]["phase"], "phase_b": info[b]["phase"],
                     "liver_volume_a_ml": va, "liver_volume_b_ml": vb,
                     "liver_volume_diff_percent": relative_difference_percent(va, vb)})
    return rows


def _case_line(index: int, total: int, cid: str, info: Dict, scores: Optional[Dict]) -> str:
    if scores is None:
        return (f"[{index}/{total}] {cid}: CT only (liver {info['predicted_liver_ml']:.0f} mL, for "
                "its phase pair)")
    return f"[{index}/{total}] {cid}: " + "  ".join(f"{k} {fmt(v['dice'])}" for k, v in scores.items())


def evaluate_manifest(manifest, out_dir="liverlvt-eval", cases: Optional[Sequence[str]] = None,
                      segment: Optional[SegmentOptions] = None, folds: Optional[Sequence] = None,
                      pred_dir=None, log_line: Callable[[str], None] = log.info) -> Dict:
    """Segment (or reuse ``pred_dir/<id>/labels.nii.gz``) and score the manifest's cases
    (``cases``: these ids only); ``folds``: cross-validation fold model folders instead of
    ``segment.model_dir``. Writes ``out_dir``/metrics.json and metrics.md; returns the result.
    ``log_line`` gets one line per case."""
    loaded = load_manifest(manifest)
    root = Path(loaded["_root"])
    run = _Run(io.ensure_output_dir(out_dir), SegmentOptions.of(segment), folds, pred_dir)
    entries = select_cases(loaded, cases)
    if not any(is_labelled(c) for c in entries) and not any(c.get("pair_of") for c in entries):
        raise InputError("none of the selected cases has reference labels or a phase partner",
                         "choose labelled cases (with 'labels' and 'annotated' in the manifest)")
    model_name, models = _models_for(entries, run)  # a clear error before any work
    scored, info = {}, {}
    for index, entry in enumerate(entries, 1):
        cid = entry["id"]
        info[cid], scores = _score_case(entry, root, run, models.get(cid, {}))
        if scores is not None:
            scored[cid] = scores
        log_line(_case_line(index, len(entries), cid, info[cid], scores))
    result = {"model": model_name, "manifest": str(Path(manifest).resolve()),
              "cases": scored, "case_info": info}
    if folds:
        result["folds"] = {name: [c for c in info if info[c]["model"] == name] for name in model_name}
    result.update(summarize_cases(list(scored.values())))
    result["by_phase"] = _by_phase(scored, info)
    result["phase_pairs"] = _pair_rows(entries, info)
    write_outputs(result, run.out_dir)
    return result
