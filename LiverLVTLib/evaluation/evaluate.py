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

Outputs ``OUT/metrics.json`` and ``OUT/metrics.md`` (per case rows, mean ± sd, tumor rows per
phase, phase pairs). Metric definitions and the empty-reference rules: :mod:`LiverLVTLib.evaluation.metrics`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ..core import io
from ..core.errors import InputError
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", nargs="?", help="predicted label map (single-pair mode)")
    parser.add_argument("ref", nargs="?", help="reference label map on the same grid")
    parser.add_argument("--manifest", default=None, help="data manifest.json (manifest mode)")
    parser.add_argument("--out", default=None,
                        help="output folder for metrics.json / metrics.md (manifest mode default: "
                        "liverlvt-eval; single-pair mode prints only unless given)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="ID",
                        help="evaluate only these case ids (manifest mode)")
    from ..segmentation.pipeline import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--folds", nargs="+", default=None, metavar="MODEL_DIR",
                        help="cross-validation: fold model folders; each case is segmented by the "
                        "first fold whose card shows it never trained on that case or its phase "
                        "partner (replaces --model)")
    parser.add_argument("--pred-dir", default=None,
                        help="reuse predictions PRED_DIR/<id>/labels.nii.gz instead of segmenting")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=list(CLASSES),
                        help="classes scored in single-pair mode (default all)")


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


def _fmt(value, digits=3) -> str:
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
            cells = [_fmt(record[name].get(key), d) if name in record else "n/a"
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
            lines.append(f"| {p['a']} | {p['b']} | {_fmt(p['liver_volume_a_ml'], 1)} | "
                         f"{_fmt(p['liver_volume_b_ml'], 1)} | {_fmt(p['liver_volume_diff_percent'], 2)} |")
        lines.append("")
    return "\n".join(lines)


def write_outputs(result: Dict, out_dir: Path) -> Path:
    out_dir = io.ensure_output_dir(out_dir)
    result = _clean(result)
    io.write_text(json.dumps(result, indent=1) + "\n", out_dir / "metrics.json")
    io.write_text(markdown(result) + "\n", out_dir / "metrics.md")
    return out_dir / "metrics.json"


# ----------------------------------------------------------------------------- single pair
def run_pair(args) -> int:
    if not args.pred or not args.ref:
        raise InputError("give either PRED and REF label maps or --manifest FILE",
                         "e.g. 'liverlvt evaluate pred.nii.gz ref.nii.gz' or "
                         "'liverlvt evaluate --manifest data/manifest.json'")
    ref = io.read_labels(args.ref)
    pred = io.read_labels(args.pred)
    if not io.same_grid(pred, ref):
        raise InputError("the predicted labels do not lie on the reference grid (pred: "
                         + io.describe_grid(pred) + "; ref: " + io.describe_grid(ref) + ")",
                         "compare label maps of the same CT (same size, spacing, origin, direction)")
    scores = score_images(pred, ref, args.classes)
    result = {"cases": {"pair": scores}, "case_info": {"pair": {"prediction": str(args.pred),
                                                             "reference": str(args.ref)}}}
    result.update(summarize_cases([scores]))
    result = _clean(result)
    for name, record in scores.items():
        extra = ""
        if name == "tumor":
            extra = (f"  lesions {record['lesions_found']}/{record['reference_lesions']} found, "
                     f"{record['false_positive_lesions']} false positive")
        print(f"{name:6s} dice {_fmt(record['dice'])}  hd95 {_fmt(record['hd95_mm'], 2)} mm  "
              f"nsd@{record['nsd_tolerance_mm']:g}mm {_fmt(record['nsd'])}{extra}")
    if args.out:
        path = write_outputs(result, Path(args.out))
        print(f"metrics: {path}")
    return 0


# ----------------------------------------------------------------------------- manifest
def _load_manifest(path) -> Dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest '{path}' does not exist", "give the path of a data manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        cases = manifest["cases"]
        assert isinstance(cases, list) and all("id" in c and "ct" in c for c in cases)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise InputError(f"'{path}' is not a LiverLVT data manifest",
                         "a manifest is JSON with a 'cases' list of {id, ct, labels, annotated, ...}") from None
    manifest["_root"] = str(path.resolve().parent)
    return manifest


def is_labelled(entry: Dict) -> bool:
    return bool(entry.get("labels")) and bool(entry.get("annotated"))


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


def _prediction(entry: Dict, root: Path, args, out_dir: Path, model=None):
    """(label image, path, seconds or None) for one case: reused from --pred-dir or segmented."""
    cid = entry["id"]
    if args.pred_dir:
        path = Path(args.pred_dir) / cid / "labels.nii.gz"
        if not path.is_file():
            raise InputError(f"no prediction for case '{cid}' at '{path}'",
                             "segment it first (liverlvt segment) or run without --pred-dir")
        return io.read_labels(path), path, None
    from ..segmentation.pipeline import segment_ct

    ct = io.read_ct(root / entry["ct"])
    start = time.perf_counter()
    labels = segment_ct(ct, model or args.model, args.device, args.tta)
    seconds = time.perf_counter() - start
    case_dir = io.ensure_output_dir(out_dir / cid)
    path = io.write_image(labels, case_dir / "labels.nii.gz")
    return labels, path, seconds


def _models_for(entries: List[Dict], args):
    """(model name(s), {case id: {"path", "name", "seen"}}) for the cases to segment.

    One model (``--model``): every case, flagged ``seen`` when the card lists it as a training
    case. Folds (``--folds``): each case by a fold that never saw it (:mod:`LiverLVTLib.evaluation.crossval`).
    Reused predictions (``--pred-dir``): no model.
    """
    from ..segmentation.model import load_card
    from .crossval import assign_folds, load_folds, trained_cases

    if args.pred_dir:
        if args.folds:
            raise InputError("--folds and --pred-dir exclude each other",
                             "segment with the fold models or score saved predictions, not both")
        return None, {}
    if args.folds:
        folds = load_folds(args.folds)
        assignment = assign_folds(entries, {name: f["trained"] for name, f in folds.items()})
        return list(folds), {cid: {"path": folds[name]["path"], "name": name, "seen": False}
                             for cid, name in assignment.items()}
    card = load_card(args.model)
    seen = trained_cases(card.card)
    return card.name, {e["id"]: {"path": args.model, "name": card.name, "seen": e["id"] in seen}
                       for e in entries}


def run_manifest(args) -> int:
    manifest = _load_manifest(args.manifest)
    root = Path(manifest["_root"])
    out_dir = io.ensure_output_dir(args.out or "liverlvt-eval")
    entries = select_cases(manifest, args.cases)
    if not any(is_labelled(c) for c in entries) and not any(c.get("pair_of") for c in entries):
        raise InputError("none of the selected cases has reference labels or a phase partner",
                         "choose labelled cases (with 'labels' and 'annotated' in the manifest)")
    model_name, models = _models_for(entries, args)  # a clear error before any work
    cases, info, records = {}, {}, []
    for index, entry in enumerate(entries, 1):
        cid = entry["id"]
        reference = None
        if is_labelled(entry):
            reference = io.read_labels(root / entry["labels"])
        scorer = models.get(cid, {})
        pred, path, seconds = _prediction(entry, root, args, out_dir, scorer.get("path"))
        liver_ml = float(np.count_nonzero(class_mask(sitk.GetArrayViewFromImage(pred), "liver"))) \
            * voxel_ml(spacing_zyx(pred))
        info[cid] = {"phase": entry.get("phase"), "annotated": list(entry.get("annotated") or []),
                     "scored": reference is not None, "prediction": str(path),
                     "predicted_liver_ml": liver_ml,
                     "seconds": None if seconds is None else round(seconds, 1),
                     "model": scorer.get("name"), "seen_in_training": scorer.get("seen")}
        if scorer.get("seen"):
            log.warning("case '%s' was in the training set of model '%s': its score is not a "
                        "held-out result", cid, scorer.get("name"))
        if reference is not None:
            if not io.same_grid(pred, reference):
                raise InputError(f"the prediction of case '{cid}' ({path}) does not lie on its "
                                 "reference grid (pred: " + io.describe_grid(pred) + "; ref: "
                                 + io.describe_grid(reference) + ")",
                                 "give predictions made on this case's CT")
            wanted = [c for c in CLASSES if c in set(entry["annotated"])]
            cases[cid] = score_images(pred, reference, wanted)
            records.append(cases[cid])
            dice = "  ".join(f"{k} {_fmt(v['dice'])}" for k, v in cases[cid].items())
            print(f"[{index}/{len(entries)}] {cid}: {dice}", flush=True)
        else:
            print(f"[{index}/{len(entries)}] {cid}: CT only (liver {liver_ml:.0f} mL, for its "
                  "phase pair)", flush=True)
    result = {"model": model_name, "manifest": str(Path(args.manifest).resolve()),
              "cases": cases, "case_info": info}
    if args.folds:
        result["folds"] = {name: [c for c in info if info[c]["model"] == name] for name in model_name}
    result.update(summarize_cases(records))
    by_phase = {}
    phases = sorted({info[c]["phase"] or "unknown" for c in cases},
                    key=lambda p: (PHASE_ORDER.index(p) if p in PHASE_ORDER else 99, p))
    for phase in phases:
        ids = [c for c in cases if (info[c]["phase"] or "unknown") == phase]
        part = summarize_cases([cases[c] for c in ids])
        part["cases"], part["n_cases"] = ids, len(ids)
        by_phase[phase] = part
    result["by_phase"] = by_phase
    result["phase_pairs"] = []
    for a, b in phase_pairs(entries):
        va, vb = info[a]["predicted_liver_ml"], info[b]["predicted_liver_ml"]
        result["phase_pairs"].append({
            "a": a, "b": b, "phase_a": info[a]["phase"], "phase_b": info[b]["phase"],
            "liver_volume_a_ml": va, "liver_volume_b_ml": vb,
            "liver_volume_diff_percent": relative_difference_percent(va, vb)})
    path = write_outputs(result, out_dir)
    for a_b in result["phase_pairs"]:
        print(f"phase pair {a_b['a']} / {a_b['b']}: liver volume differs by "
              f"{_fmt(a_b['liver_volume_diff_percent'], 2)} %")
    print(f"metrics: {path}  ({out_dir / 'metrics.md'})")
    return 0


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    if args.manifest:
        if args.pred or args.ref:
            raise InputError("give either PRED REF or --manifest, not both",
                             "drop the label-map paths or the --manifest option")
        return run_manifest(args)
    return run_pair(args)
