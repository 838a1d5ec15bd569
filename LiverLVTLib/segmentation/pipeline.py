"""Segment a CT: liver parenchyma (1), hepatic vessels (2) and liver tumors (3) on the CT grid.

Stages of the model card run in order (e.g. a coarse whole-CT pass that finds the liver, then a
fine pass in the liver box). The labels are cleaned (largest liver, vessels and tumors inside the
liver, small tumor islands removed) and brought back to the CT's own grid by nearest neighbour.
Options: :class:`LiverLVTLib.core.options.SegmentOptions`. This step never analyses; the
``liverlvt segment`` command joins it with the analysis (:mod:`LiverLVTLib.cli.segment`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..core import io
from ..core.device import select_device
from ..core.labels import CHANNELS
from ..core.options import SegmentOptions
from ..core.preprocess import bounding_box, canonical, crop, labels_to_grid, resample, to_model_grid
from ..core.progress import CancelToken, ProgressFn, checker, no_progress
from .inputs import extra_channels
from .model import ModelCard, load_card
from .postprocess import (
    clean_labels,
    confident_organ,
    drop_small_tumors,
    exclusive_labels,
    fill_tumors,
    grow_tumors,
    largest_component,
    tumor_mimics,
    unconfident_tumors,
    vessel_like_tumors,
    within_mm,
)
from .tumor_extent import TumorExtent, extend_tumors
from .vesselness import VesselPrior, prepare_prior, set_vessels

log = logging.getLogger("liverlvt")


def _previous_liver(previous, channel: int) -> np.ndarray:
    """The previous stage's liver: the largest component of its channel at 0.5, on its grid.
    The roi stage's box and its ``within_mm`` zone are both taken around it."""
    return largest_component(previous[0][channel] >= 0.5)


def _roi_box(mask: np.ndarray, previous_grid: sitk.Image, canon: sitk.Image, roi: dict):
    """Index box in ``canon`` around the previous stage's liver (``mask`` on ``previous_grid``)
    + margin. None when the previous stage found no liver."""
    if not mask.any():
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


def _within_previous_liver(probs: np.ndarray, grid: sitk.Image, liver: np.ndarray,
                           previous_grid: sitk.Image, roi: dict) -> np.ndarray:
    """The stage's answer kept within ``roi.within_mm`` of the previous stage's liver
    (:func:`_previous_liver`, on ``previous_grid``): probabilities farther out are set to 0.
    The fine stage is trained on the liver's surroundings only (``train_roi_margin_mm``); the
    liver's box also holds the heart above the dome, the spleen and stomach, where an
    equilibrium-phase blood pool at liver HU was called liver (3-fold CV,
    radcttaceomics-1211-eqp: 450 mL of heart). Unset: the box alone."""
    within = roi.get("within_mm")
    if within is None:
        return probs
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(previous_grid)
    here = sitk.GetArrayFromImage(resample(mask, grid, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
    return probs * within_mm(here, grid.GetSpacing()[::-1], float(within))[None]


def _extra_inputs(stage, grid: sitk.Image, previous, liver_channel: int) -> Optional[np.ndarray]:
    """The stage's input channels after the CT (None for a CT-only stage): the vesselness
    channel inside the previous stage's liver brought onto this stage's grid, the blob channel
    of the CT on it (:mod:`.inputs`)."""
    if len(stage.inputs) < 2:
        return None
    liver = None
    if "vesselness" in stage.inputs:  # the card check requires an roi stage before this one
        image = sitk.GetImageFromArray(np.ascontiguousarray(previous[0][liver_channel], np.float32))
        image.CopyInformation(previous[1])
        liver = sitk.GetArrayFromImage(resample(image, grid, sitk.sitkLinear, 0.0, sitk.sitkFloat32)) >= 0.5
    return extra_channels(sitk.GetArrayViewFromImage(grid), stage.inputs, liver, grid.GetSpacing()[::-1])


def _stage_probabilities(card: ModelCard, canon: sitk.Image, device, tta: bool,
                         progress: ProgressFn, check):
    from .inference import predict

    cfg = card.inference
    flips = cfg.get("tta_flips", [[0], [1], [2]]) if tta else None
    channel_of = {name: i for i, name in enumerate(card.card["labels"])}
    previous = None
    for stage in card.stages:
        check()
        source, liver = canon, None
        if stage.roi and previous is not None:
            liver = _previous_liver(previous, channel_of.get(stage.roi.get("channel", "liver"), 0))
            box = _roi_box(liver, previous[1], canon, stage.roi)
            if box is None:
                # a stage that reads the previous stage's liver box was trained on the liver's
                # surroundings only (train_roi_margin_mm): with no liver found there is nothing
                # for it to read, and on the whole CT it would answer about anatomy it never saw
                log.warning("the %s stage found no liver: nothing is labelled", stage.roi["from"])
                return np.zeros_like(previous[0]), previous[1]
            source = crop(canon, *box)
        progress(f"resample-{stage.name}", 0.0)
        grid = to_model_grid(source, stage.spacing_mm)
        network = stage.load_network(device)
        extra = _extra_inputs(stage, grid, previous, channel_of.get("liver", 0))
        probs = predict(stage, network, grid, device, overlap=float(cfg.get("overlap", 0.5)),
                        sw_batch_size=int(cfg.get("sw_batch_size", 2)), tta_flips=flips,
                        progress=progress, check=check,
                        cpu_precision=str(cfg.get("cpu_precision", "fp32")),
                        channels_last=bool(cfg.get("channels_last", False)), extra=extra)
        if liver is not None:
            probs = _within_previous_liver(probs, grid, liver, previous[1], stage.roi)
        previous = (probs, grid)
    return previous


def check_model(options: Optional[SegmentOptions] = None) -> ModelCard:
    """Everything about the model that can be checked before a run: the card (schema), each
    stage's network class and arguments, its weights file present, and the device. Commands call
    it before they create an output folder; ``segment_ct`` finds the same problems on its own."""
    from .model import check_network_args

    options = SegmentOptions.of(options)
    card = load_card(options.model_dir)
    for stage in card.stages:
        check_network_args(stage.network, stage.name)
        stage.require_weights()
    select_device(options.device)
    return card


@dataclass
class StageOutput:
    """What the networks said, before any clean-up: the last stage's class probabilities
    (C, z, y, x) on its grid, with the CT and the model card they came from."""
    ct: sitk.Image
    card: ModelCard
    probs: np.ndarray
    grid: sitk.Image

    def channel_image(self, name: str) -> sitk.Image:
        """One class's probabilities (``"liver"``, ``"vessel"`` or ``"tumor"``) as an image on
        the stage's grid, e.g. to resample onto the CT."""
        image = sitk.GetImageFromArray(self.probs[CHANNELS.index(name)].astype(np.float32))
        image.CopyInformation(self.grid)
        return image


def predict_probabilities(ct, options: Optional[SegmentOptions] = None,
                          progress: Optional[ProgressFn] = None,
                          cancel: Optional[CancelToken] = None, **changes) -> StageOutput:
    """The network half of :func:`segment_ct`: the card's stages on the CT, no post-processing."""
    options = SegmentOptions.of(options, **changes)
    progress = progress or no_progress
    ct = io.read_ct(ct)
    card = load_card(options.model_dir)
    dev = select_device(options.device)
    tta = bool(card.inference.get("tta_default", False)) if options.tta is None else options.tta
    progress("prepare", 0.0)
    probs, grid = _stage_probabilities(card, canonical(ct), dev, tta, progress, checker(cancel))
    return StageOutput(ct, card, probs, grid)


def labels_from_probabilities(out: StageOutput, postprocess: bool = True,
                              rules: Optional[dict] = None,
                              progress: Optional[ProgressFn] = None) -> sitk.Image:
    """The label half of :func:`segment_ct`: threshold, the card's clean-up (``rules`` replaces
    the card's ``postprocess`` block, e.g. to measure one rule switched off) and the labels on
    the CT's own grid."""
    progress = progress or no_progress
    progress("postprocess", 0.0)
    pp = out.card.postprocess if rules is None else rules
    threshold = float(out.card.inference.get("threshold", 0.5))
    labels = exclusive_labels(out.probs, threshold)
    if postprocess:
        labels = _clean(labels, out.probs, pp, threshold, out.grid.GetSpacing()[::-1],
                        sitk.GetArrayViewFromImage(out.grid))
    prior = VesselPrior.of(pp.get("vessel_prior")) if postprocess else None
    fields = None
    if prior is not None:
        labels, fields = _vessel_prior_on_model_grid(labels, out.grid, prior)
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(out.grid)
    result = labels_to_grid(image, out.ct)
    if fields is not None:
        result = _vessel_prior_on_ct_grid(result, out.ct, fields, prior)
        result = _tumor_dust_on_ct_grid(result, float(pp.get("min_tumor_ml", 0.1)))
    progress("postprocess", 1.0)
    return result


def segment_ct(ct, options: Optional[SegmentOptions] = None, progress: Optional[ProgressFn] = None,
               cancel: Optional[CancelToken] = None, **changes) -> sitk.Image:
    """CT (path or sitk.Image) -> uint8 label map on the CT's grid (0 bg, 1 liver, 2 vessel,
    3 tumor). ``options`` a :class:`SegmentOptions` (default: its defaults) with ``changes`` (its
    field names, e.g. ``device="cpu"``) on top. Raises InputError/ModelError for bad input and
    Cancelled when cancelled."""
    options = SegmentOptions.of(options, **changes)
    out = predict_probabilities(ct, options, progress, cancel)
    checker(cancel)()
    return labels_from_probabilities(out, options.postprocess, progress=progress)


def _vessel_prior_on_model_grid(labels: np.ndarray, grid: sitk.Image, prior: VesselPrior):
    """The card's ``postprocess.vessel_prior`` on the last stage's grid: the Frangi tube score
    (and the liver shrunk by ``inner_mm``) as images on that grid, and the labels with veins
    called tumor given back to the vessel tree (:mod:`.vesselness`)."""
    labels, score, inner, parenchyma = prepare_prior(labels, sitk.GetArrayViewFromImage(grid),
                                                     grid.GetSpacing()[::-1], prior)
    images = []
    for array in (score, inner.astype(np.float32)):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(grid)
        images.append(image)
    return labels, (images[0], images[1], parenchyma)


def _vessel_prior_on_ct_grid(out: sitk.Image, ct: sitk.Image, fields, prior: VesselPrior) -> sitk.Image:
    """Vessels decided on the CT's own voxels (thin vessels are 1-3 model voxels wide): the tube
    score and the inner liver interpolated linearly, the HU test on the native CT, in the
    liver's box only."""
    score_img, inner_img, parenchyma = fields
    lab = sitk.GetArrayFromImage(out)
    box = bounding_box(lab > 0)
    if box is None:
        return out
    sl = tuple(slice(a, b) for a, b in zip(*box))
    ref = crop(ct, *box)
    score = sitk.GetArrayFromImage(resample(score_img, ref, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    inner = sitk.GetArrayFromImage(resample(inner_img, ref, sitk.sitkLinear, 0.0, sitk.sitkFloat32)) > 0.5
    lab[sl] = set_vessels(lab[sl], sitk.GetArrayViewFromImage(ct)[sl], score, inner, parenchyma, prior)
    refined = sitk.GetImageFromArray(lab)
    refined.CopyInformation(out)
    return refined


def _tumor_dust_on_ct_grid(out: sitk.Image, min_tumor_ml: float) -> sitk.Image:
    """Tumor fragments under ``min_tumor_ml`` on the CT's own grid go back to parenchyma: the
    vessel prior decided there can cut a tumor candidate into slivers that the model-grid rule
    never saw (the demo phantom showed 0.02-0.03 mL 'tumors')."""
    lab = drop_small_tumors(sitk.GetArrayFromImage(out), out.GetSpacing()[::-1], min_tumor_ml)
    cleaned = sitk.GetImageFromArray(lab)
    cleaned.CopyInformation(out)
    return cleaned


def _clean(labels: np.ndarray, probs: np.ndarray, pp: dict, threshold: float, spacing_zyx,
           hu: np.ndarray) -> np.ndarray:
    """The model card's anatomical clean-up (see :mod:`.postprocess`)."""
    labels = vessel_like_tumors(labels, probs, float(pp.get("vessel_over_tumor_margin", -1)), threshold)
    labels = confident_organ(labels, probs[0], spacing_zyx, float(pp.get("liver_core_probability", 0.0)),
                             float(pp.get("liver_core_mm", 12.0)))
    labels = clean_labels(labels, spacing_zyx,
                          min_tumor_ml=float(pp.get("min_tumor_ml", 0.1)),
                          liver_margin_mm=float(pp.get("liver_margin_mm", 5.0)),
                          tumor_opening_radius_mm=float(pp.get("tumor_opening_radius_mm", 0.0)),
                          keep_largest=bool(pp.get("keep_largest", True)),
                          liver_bridge_mm=float(pp.get("liver_bridge_mm", 0.0)))
    excess, fluid_hu = pp.get("tumor_max_excess_hu"), pp.get("tumor_fluid_max_hu")
    fluid = None if fluid_hu is None else (float(fluid_hu), float(pp.get("tumor_fluid_max_liver_contact", 0.7)))
    labels = tumor_mimics(labels, probs, hu, float(pp.get("tumor_min_liver_contact", -1.0)),
                          None if excess is None else float(excess), threshold, fluid)
    labels = unconfident_tumors(labels, probs, float(pp.get("tumor_min_peak_probability", 0.0)))
    labels = grow_tumors(labels, probs, float(pp.get("tumor_grow_probability", 0.0)), spacing_zyx,
                         float(pp.get("tumor_grow_margin_mm", pp.get("liver_margin_mm", 5.0))))
    labels = extend_tumors(labels, hu, spacing_zyx, TumorExtent.of(pp.get("tumor_extent")))
    return fill_tumors(labels, spacing_zyx, float(pp.get("tumor_fill_mm", 0.0)))
