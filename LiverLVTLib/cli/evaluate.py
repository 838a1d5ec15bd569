"""``liverlvt evaluate``: score predicted labels against reference labels, for one pair
(``PRED REF``) or a data manifest (``--manifest``, optionally cross-validated with ``--folds``);
see :mod:`LiverLVTLib.evaluation.evaluate` for the modes and outputs."""
from __future__ import annotations

import logging
from pathlib import Path

from ..core.errors import InputError
from ..core.options import SegmentOptions
from ..evaluation.evaluate import evaluate_manifest, evaluate_pair, fmt
from ..evaluation.metrics import CLASSES
from .arguments import add_segment_arguments


def add_arguments(parser) -> None:
    parser.add_argument("pred", nargs="?", help="predicted label map (single-pair mode)")
    parser.add_argument("ref", nargs="?", help="reference label map on the same grid")
    parser.add_argument("--manifest", default=None, help="data manifest.json (manifest mode)")
    parser.add_argument("--out", default=None,
                        help="output folder for metrics.json / metrics.md (manifest mode default: "
                        "liverlvt-eval; single-pair mode prints only unless given)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="ID",
                        help="evaluate only these case ids (manifest mode)")
    add_segment_arguments(parser)
    parser.add_argument("--folds", nargs="+", default=None, metavar="MODEL_DIR",
                        help="cross-validation: fold model folders; each case is segmented by the "
                        "first fold whose card shows it never trained on that case or its phase "
                        "partner (replaces --model)")
    parser.add_argument("--pred-dir", default=None,
                        help="reuse predictions PRED_DIR/<id>/labels.nii.gz instead of segmenting")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=list(CLASSES),
                        help="classes scored in single-pair mode (default all)")


def run_pair(args) -> int:
    if not args.pred or not args.ref:
        raise InputError("give either PRED and REF label maps or --manifest FILE",
                         "e.g. 'liverlvt evaluate pred.nii.gz ref.nii.gz' or "
                         "'liverlvt evaluate --manifest data/manifest.json'")
    result = evaluate_pair(args.pred, args.ref, args.classes, out_dir=args.out)
    for name, record in result["cases"]["pair"].items():
        extra = ""
        if name == "tumor":
            extra = (f"  lesions {record['lesions_found']}/{record['reference_lesions']} found, "
                     f"{record['false_positive_lesions']} false positive")
        print(f"{name:6s} dice {fmt(record['dice'])}  hd95 {fmt(record['hd95_mm'], 2)} mm  "
              f"nsd@{record['nsd_tolerance_mm']:g}mm {fmt(record['nsd'])}{extra}")
    if args.out:
        print(f"metrics: {Path(args.out) / 'metrics.json'}")
    return 0


def run_manifest(args) -> int:
    if args.folds and args.pred_dir:
        raise InputError("--folds and --pred-dir exclude each other",
                         "segment with the fold models or score saved predictions, not both")
    out_dir = Path(args.out or "liverlvt-eval")
    result = evaluate_manifest(args.manifest, out_dir, cases=args.cases,
                               segment=SegmentOptions.from_namespace(args), folds=args.folds,
                               pred_dir=args.pred_dir, log_line=lambda line: print(line, flush=True))
    for pair in result["phase_pairs"]:
        print(f"phase pair {pair['a']} / {pair['b']}: liver volume differs by "
              f"{fmt(pair['liver_volume_diff_percent'], 2)} %")
    print(f"metrics: {out_dir / 'metrics.json'}  ({out_dir / 'metrics.md'})")
    return 0


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    if args.manifest:
        if args.pred or args.ref:
            raise InputError("give either PRED REF or --manifest, not both",
                             "drop the label-map paths or the --manifest option")
        return run_manifest(args)
    return run_pair(args)
