"""The whole pipeline on the built-in phantom abdomen: build the phantom CT (with its exact
truth), segment it, analyze and stage the result, write the outputs, and score the model's liver
against the truth. Returns values, never prints (``liverlvt demo`` is :mod:`LiverLVTLib.cli.demo`)."""
from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import Any, Dict, Optional

import SimpleITK as sitk

from ..core import io
from ..core.errors import InputError
from ..core.options import AnalysisOptions, SegmentOptions
from ..core.progress import ProgressFn
from ..core.results import result_folder


def liver_dice(labels: sitk.Image, truth: sitk.Image) -> float:
    """Dice of the whole liver (labels 1-3 together) against the truth."""
    from ..evaluation.metrics import class_mask, dice

    return dice(*(class_mask(sitk.GetArrayViewFromImage(image), "liver") for image in (labels, truth)))


MAX_SEED = 2 ** 32 - 1


def check_seed(seed) -> int:
    """The phantom's random seed: a whole number 0..2**32-1 (InputError otherwise)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"the phantom seed must be a whole number from 0 to {MAX_SEED}, not {seed!s}",
                         "give --seed 0 or another non-negative number")
    return int(seed)


def make_demo_phantom(seed: int = 0):
    """The demo's phantom abdomen (CT and exact truth) for ``seed``."""
    from ..synthetic.phantom import make_phantom

    return make_phantom(seed=check_seed(seed))


def write_phantom_files(phantom, out_dir) -> tuple:
    """(ct path, truth path): the phantom CT and its truth labels written into ``out_dir``."""
    ct_path = io.write_image(phantom.ct, Path(out_dir) / "ct.nii.gz")
    truth_path = io.write_image(phantom.labels, Path(out_dir) / "truth_labels.nii.gz")
    return ct_path, truth_path


def write_phantom_case(out_dir, seed: int = 0) -> tuple:
    """(phantom, ct path, truth path): the phantom CT and its truth labels in ``out_dir``."""
    phantom = make_demo_phantom(seed)
    return (phantom, *write_phantom_files(phantom, io.ensure_output_dir(out_dir)))


def run_demo(out_dir, seed: int = 0, segment: Optional[SegmentOptions] = None,
             analysis: Optional[AnalysisOptions] = None, analyze: bool = True,
             progress: Optional[ProgressFn] = None, models: bool = True,
             report: bool = True) -> Dict[str, Any]:
    """Phantom -> labels -> (analysis + outputs) in ``out_dir``; returns {"phantom", "labels",
    "liver_dice", "seconds" (segmentation), "measurements" (None without analysis), "paths"}.
    ``out_dir`` receives the whole result set at once (:func:`core.results.result_folder`): a
    failure leaves its earlier results as they were."""
    from ..analysis.measure import analyze_case
    from ..outputs.writer import write_analysis
    from ..segmentation.pipeline import check_model, segment_ct

    segment = SegmentOptions.of(segment)
    analysis = AnalysisOptions.of(analysis) if analyze else None
    check_model(segment)
    phantom = make_demo_phantom(seed)
    with result_folder(out_dir) as stage:
        ct_path, truth_path = write_phantom_files(phantom, stage)
        start = time.perf_counter()
        labels = segment_ct(phantom.ct, segment, progress=progress)
        seconds = time.perf_counter() - start
        paths: Dict[str, Any] = {"ct": ct_path, "truth": truth_path,
                                 "labels": io.write_image(labels, stage / "labels.nii.gz")}
        measurements = None
        if analyze:
            measurements = analyze_case(phantom.ct, labels, analysis, progress=progress)
            paths.update(write_analysis(measurements, phantom.ct, labels, stage, models=models,
                                        report=report))
    return {"phantom": phantom, "labels": labels, "liver_dice": liver_dice(labels, phantom.labels),
            "seconds": seconds, "measurements": measurements,
            "paths": _final(paths, stage, Path(out_dir).absolute())}


def _final(paths: Dict[str, Any], stage: Path, out: Path) -> Dict[str, Any]:
    """The staged paths as they are after the swap."""
    def moved(path):
        return str(out / Path(path).relative_to(stage))

    return {k: [moved(p) for p in v] if isinstance(v, list) else moved(v) for k, v in paths.items()}
