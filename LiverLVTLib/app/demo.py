"""The whole pipeline on the built-in phantom abdomen: build the phantom CT (with its exact
truth), segment it, analyze and stage the result, write the outputs, and score the model's liver
against the truth. Returns values, never prints (``liverlvt demo`` is :mod:`LiverLVTLib.cli.demo`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

import SimpleITK as sitk

from ..core import io
from ..core.options import AnalysisOptions, SegmentOptions
from ..core.progress import ProgressFn


def liver_dice(labels: sitk.Image, truth: sitk.Image) -> float:
    """Dice of the whole liver (labels 1-3 together) against the truth."""
    from ..evaluation.metrics import class_mask, dice

    return dice(*(class_mask(sitk.GetArrayViewFromImage(image), "liver") for image in (labels, truth)))


def write_phantom_case(out_dir, seed: int = 0) -> tuple:
    """(phantom, ct path, truth path): the phantom CT and its truth labels in ``out_dir``."""
    from ..synthetic.phantom import make_phantom

    out_dir = io.ensure_output_dir(out_dir)
    phantom = make_phantom(seed=seed)
    ct_path = io.write_image(phantom.ct, Path(out_dir) / "ct.nii.gz")
    truth_path = io.write_image(phantom.labels, Path(out_dir) / "truth_labels.nii.gz")
    return phantom, ct_path, truth_path


def run_demo(out_dir, seed: int = 0, segment: Optional[SegmentOptions] = None,
             analysis: Optional[AnalysisOptions] = None, analyze: bool = True,
             progress: Optional[ProgressFn] = None, models: bool = True,
             report: bool = True) -> Dict[str, Any]:
    """Phantom -> labels -> (analysis + outputs) in ``out_dir``; returns {"phantom", "labels",
    "liver_dice", "seconds" (segmentation), "measurements" (None without analysis), "paths"}."""
    from ..analysis.measure import analyze_case
    from ..outputs.writer import write_analysis
    from ..segmentation.pipeline import segment_ct

    phantom, ct_path, truth_path = write_phantom_case(out_dir, seed)
    start = time.perf_counter()
    labels = segment_ct(phantom.ct, segment, progress=progress)
    seconds = time.perf_counter() - start
    paths: Dict[str, Any] = {"ct": str(ct_path), "truth": str(truth_path),
                             "labels": str(io.write_image(labels, Path(out_dir) / "labels.nii.gz"))}
    measurements = None
    if analyze:
        measurements = analyze_case(phantom.ct, labels, analysis, progress=progress)
        paths.update(write_analysis(measurements, phantom.ct, labels, out_dir, models=models,
                                    report=report))
    return {"phantom": phantom, "labels": labels, "liver_dice": liver_dice(labels, phantom.labels),
            "seconds": seconds, "measurements": measurements, "paths": paths}
