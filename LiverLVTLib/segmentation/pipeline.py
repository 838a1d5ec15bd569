"""Segment a CT: liver parenchyma (1), hepatic vessels (2) and liver tumors (3) on the CT grid.

Stages of the model card run in order (e.g. a coarse whole-CT pass that finds the liver, then a
fine pass in the liver box). The labels are cleaned (largest liver, vessels and tumors inside the
liver, small tumor islands removed) and brought back to the CT's own grid by nearest neighbour.
``liverlvt segment`` then runs the clinical analysis on them (``--no-analysis`` to skip).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..core import io
from ..core.errors import InputError
from ..core.preprocess import canonical, crop, labels_to_grid, to_model_grid
from ..core.progress import CancelToken, ProgressFn, checker, no_progress
from .model import ModelCard, load_card
from .postprocess import clean_labels, exclusive_labels, largest_component, vessel_like_tumors

log = logging.getLogger("liverlvt")


def _roi_box(previous: np.ndarray, previous_grid: sitk.Image, canon: sitk.Image, roi: dict,
             channel: int):
    """Index box in ``canon`` around the previous stage's largest liver component + margin.
    None when the previous stage found no liver (then the next stage sees the whole CT)."""
    mask = largest_component(previous[channel] >= 0.5)
    if not mask.any():
        log.warning("the coarse stage found no liver; the fine stage runs on the whole CT")
        return None
    zyx = np.argwhere(mask)
    margin = float(roi.get("margin_mm", 15.0))
    corners = []
    for index in (zyx.min(0), zyx.max(0)):
        point = previous_grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in index[::-1]])
        corners.append(np.asarray(point))
    low = np.minimum(*corners) - margin
    high = np.maximum(*corners) + margin
    # canon has the identity direction (LPS), so physical -> index is a per-axis affine map
    origin, spacing = np.asarray(canon.GetOrigin()), np.asarray(canon.GetSpacing())
    size = np.asarray(canon.GetSize())
    lo_xyz = np.clip(np.floor((low - origin) / spacing), 0, size - 1).astype(int)
    hi_xyz = np.clip(np.ceil((high - origin) / spacing) + 1, 1, size).astype(int)
    return lo_xyz[::-1], hi_xyz[::-1]


def _stage_probabilities(card: ModelCard, canon: sitk.Image, device, tta: bool,
                         progress: ProgressFn, check):
    from .inference import predict

    cfg = card.inference
    flips = cfg.get("tta_flips", [[0], [1], [2]]) if tta else None
    channel_of = {name: i for i, name in enumerate(card.card["labels"])}
    previous = None
    for stage in card.stages:
        check()
        source = canon
        if stage.roi and previous is not None:
            box = _roi_box(previous[0], previous[1], canon,
                           stage.roi, channel_of.get(stage.roi.get("channel", "liver"), 0))
            if box is not None:
                source = crop(canon, *box)
        progress(f"resample-{stage.name}", 0.0)
        grid = to_model_grid(source, stage.spacing_mm)
        network = stage.load_network(device)
        probs = predict(stage, network, grid, device, overlap=float(cfg.get("overlap", 0.5)),
                        sw_batch_size=int(cfg.get("sw_batch_size", 2)), tta_flips=flips,
                        progress=progress, check=check)
        previous = (probs, grid)
    return previous


def segment_ct(ct, model_dir=None, device: str = "auto", tta: Optional[bool] = None,
               progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
               postprocess: bool = True) -> sitk.Image:
    """CT (path or sitk.Image) -> uint8 label map on the CT's grid (0 bg, 1 liver, 2 vessel,
    3 tumor). Raises InputError/ModelError for bad input and Cancelled when cancelled."""
    from .inference import select_device

    progress = progress or no_progress
    check = checker(cancel)
    ct = io.read_ct(ct)
    card = load_card(model_dir)
    dev = select_device(device)
    tta = bool(card.inference.get("tta_default", False)) if tta is None else bool(tta)
    progress("prepare", 0.0)
    canon = canonical(ct)
    probs, grid = _stage_probabilities(card, canon, dev, tta, progress, check)
    check()
    progress("postprocess", 0.0)
    threshold = float(card.inference.get("threshold", 0.5))
    labels = exclusive_labels(probs, threshold)
    if postprocess:
        pp = card.postprocess
        labels = vessel_like_tumors(labels, probs, float(pp.get("vessel_over_tumor_margin", -1)),
                                    threshold)
        labels = clean_labels(labels, grid.GetSpacing()[::-1],
                              min_tumor_ml=float(pp.get("min_tumor_ml", 0.1)),
                              liver_margin_mm=float(pp.get("liver_margin_mm", 5.0)),
                              tumor_opening_radius_mm=float(pp.get("tumor_opening_radius_mm", 0.0)),
                              keep_largest=bool(pp.get("keep_largest", True)),
                              liver_bridge_mm=float(pp.get("liver_bridge_mm", 0.0)))
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(grid)
    out = labels_to_grid(image, ct)
    progress("postprocess", 1.0)
    return out


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ct", help="CT: NIfTI, NRRD, MHA file or DICOM series folder")
    parser.add_argument("--out", default="liverlvt-out", help="output folder (default %(default)s)")
    add_model_arguments(parser)
    add_run_arguments(parser)
    _add_analysis_arguments(parser)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --device, --tta/--no-tta: shared by segment, demo and evaluate."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    tta = parser.add_mutually_exclusive_group()
    tta.add_argument("--tta", dest="tta", action="store_true", default=None,
                     help="flip test-time augmentation (slower; default: the model card's choice)")
    tta.add_argument("--no-tta", dest="tta", action="store_false")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-analysis and --progress-lines: shared by segment and demo."""
    parser.add_argument("--no-analysis", action="store_true",
                        help="write the labels only, skip measurements/staging/report")
    parser.add_argument("--progress-lines", action="store_true",
                        help="print machine-readable 'LIVERLVT_PROGRESS stage fraction' lines "
                        "(used by the Slicer module) instead of a progress bar")


def _add_analysis_arguments(parser) -> None:
    from ..analysis.measure import add_staging_arguments

    add_staging_arguments(parser)


def cli_progress(progress_lines: bool) -> tuple:
    """A progress callback for the terminal: tqdm bar per stage, or machine-readable lines."""
    if progress_lines:
        from ..core.progress import progress_line

        def report(stage, fraction):
            print(progress_line(stage, fraction), flush=True)

        return report, lambda: None
    from tqdm import tqdm

    bar = {"stage": None, "bar": None}

    def report(stage, fraction):
        if bar["stage"] != stage:
            if bar["bar"] is not None:
                bar["bar"].close()
            bar["stage"], bar["bar"] = stage, tqdm(total=100, desc=stage, unit="%", leave=False,
                                               disable=None)  # no bar when not a terminal
        bar["bar"].n = int(round(100 * fraction))
        bar["bar"].refresh()

    return report, lambda: bar["bar"] is not None and bar["bar"].close()


def segment_to_folder(args, ct: sitk.Image, out_dir) -> sitk.Image:
    """Segment with the CLI's progress display, write ``out_dir/labels.nii.gz``, say where."""
    report, close = cli_progress(args.progress_lines)
    start = time.perf_counter()
    try:
        labels = segment_ct(ct, args.model, args.device, args.tta, progress=report)
    finally:
        close()
    path = io.write_image(labels, Path(out_dir) / "labels.nii.gz")
    print(f"labels: {path}  ({time.perf_counter() - start:.1f} s)")
    return labels


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    out_dir = io.ensure_output_dir(args.out)
    ct = io.read_ct(args.ct)
    labels = segment_to_folder(args, ct, out_dir)
    if not args.no_analysis:
        run_analysis_outputs(args, ct, labels, out_dir, ct_name=io.case_name(args.ct))
    return 0


def run_analysis_outputs(args, ct, labels, out_dir, ct_name: str = "CT") -> None:
    """Analysis (+ optional scene) of freshly segmented labels."""
    from ..analysis.measure import run_on_images

    if not (sitk.GetArrayViewFromImage(labels) > 0).any():
        raise InputError("no liver was found in this CT, so nothing can be measured",
                         "check that the CT covers the upper abdomen (liver) and is a CT in HU")
    run_on_images(args, ct, labels, out_dir, ct_name=ct_name)
