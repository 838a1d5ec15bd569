"""Command-line options shared by several commands. Flags, defaults and choices come from
:mod:`LiverLVTLib.core.options` (``FLAGS``, the dataclass defaults, the choice tuples); each
option's ``dest`` is its field name, so ``SegmentOptions.from_namespace(args)`` and
``AnalysisOptions.from_namespace(args)`` read them back."""
from __future__ import annotations

import argparse

from ..analysis.staging import PAPER_RULE_HELP
from ..core.options import CYST_RULES, DEVICES, M_VALUES, N_VALUES, AnalysisOptions, SegmentOptions

SCENE_HELP = ("also write a 3D Slicer scene bundle (.mrb) with the CT, segmentation, models, "
              "lesion table and diameter lines (needs the slicer-core package)")


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --model, --tta/--no-tta, --no-postprocess: shared by segment, demo and evaluate."""
    flags, default = SegmentOptions.FLAGS, SegmentOptions()
    parser.add_argument(flags["device"], dest="device", default=default.device, choices=DEVICES,
                        help="where the network runs: auto (the CUDA GPU when PyTorch sees one, "
                        "else the CPU), cpu, or cuda (refused when there is no usable GPU) "
                        "(default %(default)s)")
    parser.add_argument(flags["model_dir"], dest="model_dir", metavar="MODEL", default=default.model_dir,
                        help="model folder (default: the shipped model)")
    tta = parser.add_mutually_exclusive_group()
    tta.add_argument(flags["tta"], dest="tta", action="store_true", default=default.tta,
                     help="flip test-time augmentation (slower; default: the model card's choice)")
    tta.add_argument(flags["no_tta"], dest="tta", action="store_false")
    parser.add_argument(flags["postprocess"], dest="postprocess", action="store_false",
                        default=default.postprocess,
                        help="keep the network's raw labels (no anatomical clean-up; for debugging)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-analysis and --progress-lines: shared by segment and demo."""
    parser.add_argument("--no-analysis", action="store_true",
                        help="write the labels only, skip measurements/staging/report")
    parser.add_argument("--progress-lines", action="store_true",
                        help="print machine-readable 'LIVERLVT_PROGRESS stage fraction' lines "
                        "(used by the Slicer module) instead of a progress bar")


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """--n, --m, --cyst-rule, --major-vessel-mm: shared by analyze, segment and demo."""
    flags, default = AnalysisOptions.FLAGS, AnalysisOptions()
    parser.add_argument(flags["n"], dest="n", default=default.n, type=str.upper, choices=N_VALUES,
                        help="regional lymph nodes for the AJCC stage group (default %(default)s: "
                        "unknown)")
    parser.add_argument(flags["m"], dest="m", default=default.m, type=str.upper, choices=M_VALUES,
                        help="distant metastasis for the AJCC stage group (default %(default)s: "
                        "unknown)")
    parser.add_argument(flags["cyst_rule"], dest="cyst_rule", default=default.cyst_rule,
                        choices=CYST_RULES,
                        help="acr: mean <= 20 HU and homogeneous -> cyst, 20-45 HU -> "
                        "indeterminate (counted as tumor, flagged), above -> tumor (ACR white "
                        "paper, Gore et al. 2017); gaussian45: the seed paper's Gaussian-fit mean "
                        "< 45 HU -> cyst; off: every lesion is a tumor (default %(default)s)")
    parser.add_argument(flags["major_vessel_mm"], dest="major_vessel_mm", type=float,
                        default=default.major_vessel_mm,
                        help="vessel diameter at the contact (mm) from which tumor contact "
                        "means paper stage 4 / AJCC T4 (default %(default)g). " + PAPER_RULE_HELP)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-models, --no-report, --scene: what the analysis writes besides measurements."""
    parser.add_argument("--no-models", action="store_true", help="skip the surface models")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    add_scene_argument(parser)


def add_scene_argument(parser: argparse.ArgumentParser) -> None:
    """``--scene OUT.mrb`` for the ``segment``, ``analyze`` and ``demo`` commands."""
    parser.add_argument("--scene", metavar="OUT.mrb", default=None, help=SCENE_HELP)
