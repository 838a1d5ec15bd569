"""``liverlvt segment CT``: liver parenchyma (1), hepatic vessels (2) and liver tumors (3) on the
CT's own grid (``OUT/labels.nii.gz``), then the clinical analysis of those labels (measurements,
staging, models, report; ``--no-analysis`` to skip)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import SimpleITK as sitk

from ..core import io
from ..core.errors import InputError
from ..core.options import AnalysisOptions, SegmentOptions
from ..segmentation.pipeline import segment_ct
from .analyze import analyze_to_folder
from .arguments import add_analysis_arguments, add_output_arguments, add_run_arguments, add_segment_arguments
from .progress import cli_progress


def add_arguments(parser) -> None:
    parser.add_argument("ct", help="CT: NIfTI, NRRD, MHA file or DICOM series folder")
    parser.add_argument("--out", default="liverlvt-out", help="output folder (default %(default)s)")
    add_segment_arguments(parser)
    add_run_arguments(parser)
    add_analysis_arguments(parser)
    add_output_arguments(parser)


def segment_to_folder(options: SegmentOptions, progress_lines: bool, ct: sitk.Image, out_dir) -> sitk.Image:
    """Segment with the terminal's progress display, write ``out_dir/labels.nii.gz``, say where."""
    report, close = cli_progress(progress_lines)
    start = time.perf_counter()
    try:
        labels = segment_ct(ct, options, progress=report)
    finally:
        close()
    path = io.write_image(labels, Path(out_dir) / "labels.nii.gz")
    print(f"labels: {path}  ({time.perf_counter() - start:.1f} s)")
    return labels


def analyze_segmented(args, ct: sitk.Image, labels: sitk.Image, out_dir, ct_name: str = "CT") -> None:
    """The analysis (+ optional scene) of freshly segmented labels."""
    if not (sitk.GetArrayViewFromImage(labels) > 0).any():
        raise InputError("no liver was found in this CT, so nothing can be measured",
                         "check that the CT covers the upper abdomen (liver) and is a CT in HU")
    analyze_to_folder(args, AnalysisOptions.from_namespace(args), ct, labels, out_dir, ct_name=ct_name)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    options = SegmentOptions.from_namespace(args)
    if not args.no_analysis:
        AnalysisOptions.from_namespace(args)  # a bad option fails before the long segmentation
    out_dir = io.ensure_output_dir(args.out)
    ct = io.read_ct(args.ct)
    labels = segment_to_folder(options, args.progress_lines, ct, out_dir)
    if not args.no_analysis:
        analyze_segmented(args, ct, labels, out_dir, ct_name=io.case_name(args.ct))
    return 0
