"""``liverlvt segment CT``: liver parenchyma (1), hepatic vessels (2) and liver tumors (3) on the
CT's own grid (``OUT/labels.nii.gz``), then the clinical analysis of those labels (measurements,
staging, models, report; ``--no-analysis`` to skip).

The CT, the options, the model card and the ``--scene`` path are checked before the output folder
is touched; the folder then receives the whole new result set at once (:mod:`.folder`)."""
from __future__ import annotations

import logging
import time

import numpy as np
import SimpleITK as sitk

from ..core import io
from ..core.errors import InputError
from ..core.options import AnalysisOptions, SegmentOptions
from ..segmentation.pipeline import check_model, segment_ct
from .analyze import analyze_into, print_summary
from .arguments import add_analysis_arguments, add_output_arguments, add_run_arguments, add_segment_arguments
from .folder import Run, after_landing, check_scene_path, results_run
from .progress import cli_progress

log = logging.getLogger("liverlvt")
MIN_LIVER_ML = 30.0  # less segmented liver than this: no liver in the field of view


def add_arguments(parser) -> None:
    parser.add_argument("ct", help="CT: NIfTI, NRRD, MHA file or DICOM series folder")
    parser.add_argument("--out", default="liverlvt-out", help="output folder (default %(default)s)")
    add_segment_arguments(parser)
    add_run_arguments(parser)
    add_analysis_arguments(parser)
    add_output_arguments(parser)


def check_run(args):
    """(segment options, analysis options or None, scene path or None), all checked before any
    work; the model card, its networks, weights and the device too."""
    options = SegmentOptions.from_namespace(args)
    analysis = None if args.no_analysis else AnalysisOptions.from_namespace(args)
    scene = None if args.no_analysis else check_scene_path(getattr(args, "scene", None))
    check_model(options)
    return options, analysis, scene


def liver_ml(labels: sitk.Image) -> float:
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    return float(np.count_nonzero(sitk.GetArrayViewFromImage(labels))) * voxel_ml


def require_liver(labels: sitk.Image) -> None:
    """InputError when the model found (next to) no liver: no measurements, no staging."""
    found = liver_ml(labels)
    if found < MIN_LIVER_ML:
        extent = " x ".join(f"{n * s:.0f}" for n, s in zip(labels.GetSize(), labels.GetSpacing()))
        raise InputError(f"no liver was found in the field of view of this CT ({extent} mm; the "
                         f"model labelled {found:.1f} mL, less than the {MIN_LIVER_ML:g} mL of any "
                         "liver), so nothing was measured or staged",
                         "give a CT that covers the upper abdomen (liver), in HU")


def segment_into(options: SegmentOptions, progress_lines: bool, ct: sitk.Image, run: Run) -> sitk.Image:
    """Segment with the terminal's progress display into the run's ``labels.nii.gz``."""
    report, close = cli_progress(progress_lines)
    start = time.perf_counter()
    try:
        labels = segment_ct(ct, options, progress=report)
    finally:
        close()
    io.write_image(labels, run.stage / "labels.nii.gz")
    print(f"labels: {run.out / 'labels.nii.gz'}  ({time.perf_counter() - start:.1f} s)", flush=True)
    return labels


def segment_and_analyze(args, options, analysis, ct: sitk.Image, run: Run, ct_name: str):
    """Labels, then (unless --no-analysis) the analysis into the same run; returns
    (labels, measurements or None, final paths)."""
    labels = segment_into(options, args.progress_lines, ct, run)
    if analysis is None:
        if liver_ml(labels) < MIN_LIVER_ML:
            log.warning("no liver was found in the field of view (%.1f mL labelled)", liver_ml(labels))
        return labels, None, {"labels": str(run.out / "labels.nii.gz")}
    require_liver(labels)
    result, paths = analyze_into(args, analysis, ct, labels, run, ct_name=ct_name)
    return labels, result, {"labels": str(run.out / "labels.nii.gz"), **paths}


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    options, analysis, scene = check_run(args)
    ct = io.read_ct(args.ct)
    with results_run(args.out, scene, inputs=(args.ct, options.model_dir)) as folder:
        _, result, paths = segment_and_analyze(args, options, analysis, ct, folder,
                                            ct_name=io.case_name(args.ct))
    with after_landing(folder):
        if result is not None:
            print_summary(result, paths, folder.out)
    return 0
