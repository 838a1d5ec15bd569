"""Run the whole pipeline on the built-in phantom abdomen: build the phantom CT, segment it with
the shipped model, analyze and stage the result, and print where the outputs are together with
the Dice of the model's liver against the phantom's exact truth."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import io
from .labels import BACKGROUND


def liver_dice(labels: sitk.Image, truth: sitk.Image) -> float:
    """Dice of the whole liver (labels 1-3 together) against the truth."""
    a = sitk.GetArrayViewFromImage(labels) > BACKGROUND
    b = sitk.GetArrayViewFromImage(truth) > BACKGROUND
    denominator = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / denominator) if denominator else 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="liverlvt-demo", help="output folder (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="phantom random seed")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--tta", action="store_true", default=None, help="flip test-time augmentation")
    parser.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-analysis", action="store_true", help="labels only")
    from .segment import _add_analysis_arguments

    _add_analysis_arguments(parser)


def run(args) -> int:
    from .phantom import make_phantom
    from .segment import cli_progress, run_analysis_outputs, segment_ct

    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    out_dir = io.ensure_output_dir(args.out)
    phantom = make_phantom(seed=args.seed)
    ct_path = io.write_image(phantom.ct, Path(out_dir) / "ct.nii.gz")
    io.write_image(phantom.labels, Path(out_dir) / "truth_labels.nii.gz")
    print(f"phantom CT: {ct_path}  (truth: {Path(out_dir) / 'truth_labels.nii.gz'})")
    report, close = cli_progress(args.progress_lines)
    start = time.perf_counter()
    try:
        labels = segment_ct(phantom.ct, args.model, args.device, args.tta, progress=report)
    finally:
        close()
    path = io.write_image(labels, Path(out_dir) / "labels.nii.gz")
    print(f"labels: {path}  ({time.perf_counter() - start:.1f} s)")
    print(f"liver Dice of the shipped model against the phantom truth: "
          f"{liver_dice(labels, phantom.labels):.3f}")
    if not args.no_analysis:
        run_analysis_outputs(args, phantom.ct, labels, out_dir, ct_name="Phantom CT")
    print(f"outputs: {Path(out_dir).resolve()}")
    return 0
