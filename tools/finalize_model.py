"""Ship a trained model folder: copy its weights into Resources/Models/<name>/, add the held-out
evaluation (``liverlvt evaluate``'s metrics.json) to model.json, refresh the sha256 of every
weights file and write MODEL_CARD.md (with evaluate's Markdown table).

    .venv/bin/python tools/finalize_model.py --run runs/lvt-unet --eval runs/eval/metrics.json \
        --out Resources/Models/lvt-unet [--notes NOTES.md] [--tta-default]

``--eval`` may be a cross-validation run (``liverlvt evaluate --folds runs/lvt-unet runs/fold-b``):
the card then holds the shipped fold's own held-out cases and the pooled k-fold table.

A release model trained on every labelled case (``tools/train_all.sh``) has no held-out case:
``--eval`` is then the cross-validation of its recipe (folds other than ``--run``) and ``--fit``
the release model's own evaluation (``liverlvt evaluate --model RUN``: training cases, a fit that
shows the weights reproduce, not an accuracy estimate); the card keeps both, labelled so.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from LiverLVTLib.core.io import write_text  # noqa: E402
from LiverLVTLib.evaluation.crossval import trained_cases  # noqa: E402
from LiverLVTLib.segmentation.model import write_card  # noqa: E402


def stage_lines(card: dict) -> list:
    lines = []
    for stage in card["stages"]:
        net = stage["network"]
        record = card["training"]["stages"].get(stage["name"], {})
        lines.append(
            f"- **{stage['name']}**: MONAI `{net['class']}` channels {net['args'].get('channels')}, "
            f"{net['args'].get('num_res_units', 0)} residual units, {net['args'].get('norm', '')} norm; "
            f"input {stage['spacing_mm']} mm (canonical LPS), window {stage['window_hu']} HU -> [0, 1], "
            f"patch {stage['patch_size']}"
            + (f"; runs in the box of the '{stage['roi']['from']}' liver + {stage['roi']['margin_mm']} mm"
               if stage.get("roi") else "; runs on the whole CT")
            + f". Trained {record.get('iterations', '?')} iterations in {record.get('seconds', 0) / 60:.0f} min"
            + ("" if record.get("complete", True) else " (stopped by its time budget)") + "."
            + (f" Weights: the mean of {len(stage['soup_of'])} runs' (a uniform model soup): "
               + ", ".join(f"`{run}`" for run in stage["soup_of"]) + "." if stage.get("soup_of") else ""))
    return lines


def own_metrics(metrics: dict, fold: str) -> dict:
    """The shipped model's own held-out rows (all rows, or its fold's rows of a k-fold run)."""
    from LiverLVTLib.evaluation.evaluate import summarize_cases

    ids = list(metrics["cases"])
    if metrics.get("folds"):
        assert fold in metrics["folds"], f"the k-fold run has no fold named '{fold}'"
        ids = [c for c in metrics["folds"][fold] if c in metrics["cases"]]
    cases = {c: metrics["cases"][c] for c in ids}
    summary = summarize_cases(list(cases.values()))
    pairs = [p for p in metrics.get("phase_pairs", [])
             if not metrics.get("folds") or {p["a"], p["b"]} <= set(metrics["folds"][fold])]
    return {"held_out_cases": sorted(ids), "cases": cases, "mean": summary["mean"], "sd": summary["sd"],
            "phase_pairs": pairs, "evaluated_with": "liverlvt evaluate, the card's default inference settings"}


def accuracy_lines(run: str, metrics: dict, held_out: list, fit) -> list:
    how = " (`liverlvt evaluate`, only the classes each case annotates)."
    if fit:
        return ["## Accuracy: cross-validation of the recipe", "",
                "This model trained on every labelled shared case, so none is held out from it. Its accuracy "
                "estimate is the cross-validation of the same recipe below: every labelled case scored by a "
                f"fold model that never trained on it or on its phase partner ({', '.join(metrics['folds'])})"
                + how + " The model's own fit on its training cases is in model.json (`metrics.cases`)."]
    folds = [f for f in metrics.get("folds") or {} if f != run]
    return ["## Held-out accuracy", "",
            f"Cases this model never saw in training: {', '.join(held_out)}"
            + (f"; with the other fold(s) ({', '.join(folds)}, trained as the notes say) every labelled "
               "shared case is scored by a model that never trained on it" if folds else "") + how]


def release_metrics(metrics: dict, fit: dict) -> dict:
    """The card's metrics of a model trained on every labelled case: its fit on them and the
    cross-validation of its recipe (the accuracy estimate)."""
    assert metrics.get("folds"), "--fit needs --eval to be a cross-validation of the same recipe"
    return {"held_out_cases": [], "trained_on_every_labelled_case": True,
            "cases": fit["cases"], "mean": fit.get("mean"), "sd": fit.get("sd"),
            "phase_pairs": fit.get("phase_pairs", []),
            "evaluated_with": "liverlvt evaluate on its own training cases: a fit (the weights reproduce "
                              "it), not an accuracy estimate; see cross_validation"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True, help="held-out metrics.json")
    parser.add_argument("--fit", type=Path, help="release model: its own metrics.json on its training cases")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--notes", type=Path, help="Markdown notes appended to the card")
    parser.add_argument("--config", default="configs/lvt-unet-v2.json", help="the training config named in the card")
    parser.add_argument("--tta-default", action="store_true",
                        help="make flip test-time augmentation the default (when it measured better)")
    args = parser.parse_args()
    card = json.loads((args.run / "model.json").read_text())
    card.setdefault("inference", {})["tta_default"] = bool(args.tta_default)
    metrics = json.loads(args.eval.read_text())
    table = (args.eval.parent / "metrics.md").read_text() if (args.eval.parent / "metrics.md").exists() else ""
    args.out.mkdir(parents=True, exist_ok=True)
    for stage in card["stages"]:
        shutil.copy2(args.run / stage["weights"], args.out / stage["weights"])
    trained = sorted(trained_cases(card))
    fit = json.loads(args.fit.read_text()) if args.fit else None
    card["metrics"] = release_metrics(metrics, fit) if fit else own_metrics(metrics, args.run.name)
    held_out = card["metrics"]["held_out_cases"]
    assert not set(trained) & set(held_out), "a held-out case was trained on"
    if metrics.get("folds"):
        card["metrics"]["cross_validation"] = {
            k: metrics.get(k) for k in ("folds", "cases", "mean", "sd", "by_phase", "phase_pairs")}
    write_card(args.out, card)
    excluded = card["training"].get("excluded") or []
    notes = args.notes.read_text() if args.notes else ""
    text = "\n".join([
        f"# Model card: {card['name']}", "",
        "Liver (whole organ), hepatic vessel and liver tumor segmentation of abdominal CT: a two-stage "
        "cascade of MONAI 3D U-Nets with three sigmoid outputs (LVT multi-label design).", "",
        "## License and intended use", "", card["license"], "",
        "Research use only; not a medical device. Every result needs a radiologist's review.", "",
        "## Architecture and input", "", *stage_lines(card), "",
        f"Inference: {json.dumps(card.get('inference'))}; post-processing: {json.dumps(card.get('postprocess'))}.", "",
        "## Training", "",
        f"- Real cases (labels used only for the classes each case annotates; masked BCE + Dice): {', '.join(trained)}.",
        f"- Synthetic cases from the 16 label-only 3D-IRCADb maps: {card['training'].get('synthetic_from_label_only')}.",
        f"- Hardware: {card['training'].get('hardware')}; seed {card['training'].get('seed')}.",
        f"- Command: `liverlvt train --manifest ../shared/data/manifest.json --config {args.config}"
        + (f" --exclude {' '.join(excluded)}" if excluded else "") + "`"
        + "".join(f" (stage {name} warm-started from `{rec['warm_start']}`)"
                  for name, rec in card["training"].get("stages", {}).items() if rec.get("warm_start"))
        + ".", "",
        *accuracy_lines(args.run.name, metrics, held_out, fit), "", table, "", notes, ""])
    write_text(text, args.out / "MODEL_CARD.md")
    print(f"shipped {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
