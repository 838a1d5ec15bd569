"""A stage's input channels, built the same way for training and inference (the one home).

A card stage lists its ``inputs`` (default ``["ct"]``; the network's ``in_channels`` equals
their number):

- ``"ct"``: HU clipped to the stage's ``window_hu`` and scaled to [0, 1].
- ``"vesselness"``: a vesselness prior for the hepatic veins (portal + hepatic veins inside the
  liver, the project's vessel definition), the MTCL recipe (MICCAI 2021: Hessian vesselness of
  the liver-masked CT as a second input channel; networks fed such a channel reach vessel Dice
  0.76-0.79 on 3D-IRCADb against 0.67 for the filter alone, ../shared/notes/model-levers.md).
  Here: the multiscale Frangi bright-tube response of :func:`.vesselness.vesselness` (sigma
  1.25-3 mm) on the *enhancing* voxels of the liver grown by ``LIVER_GROW_MM`` (HU above the
  parenchyma's median by ``MIN_CONTRAST_HU``: vessels are bright by definition, and the Hessians
  of only those voxels bound the cost), divided by a fixed ``SCALE_HU`` and clipped to [0, 1]. A
  fixed scale, not a per-case percentile, so a late phase's faint veins give a faint channel, as
  the CT does. The liver is the reference liver in training and the previous stage's liver at
  inference (the channel needs a stage with ``roi``).
- ``"blob"``: the signed multiscale determinant-of-Hessian blob score of the CT (tumor-like
  bright or dark blobs; tubes score zero), :func:`.blobness.blob_channel`. It needs no liver; in
  training it is computed on each augmented patch after the synthetic tumors are drawn in; the
  vesselness channel is cached per case (:data:`CACHED_INPUTS`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..core.errors import ModelError
from ..core.preprocess import normalize

INPUTS = ("ct", "vesselness", "blob")
CACHED_INPUTS = ("vesselness",)  # built once per training case (on its reference liver)
SCALE_HU = 10.0          # Frangi response (HU-like, sigma^2-normalised) that maps to 1.0; the main
                         # portal veins of ircadb-1.1 reach 10-20, its parenchyma's 90th centile 0.5
MIN_CONTRAST_HU = 10.0   # enhancing voxels: this far above the median parenchyma
LIVER_GROW_MM = 5.0      # the liver mask grown by this (a predicted liver misses its edge veins)


def stage_inputs_of(stage: dict) -> list:
    """The ``inputs`` a stage (card or training config) declares (default: the CT alone)."""
    return list(stage.get("inputs") or ["ct"])


def cached_inputs(inputs: Sequence[str]) -> list:
    """The channels among ``inputs`` that training caches per case (:data:`CACHED_INPUTS`, in
    their order); the others are built on each patch."""
    return [name for name in inputs if name in CACHED_INPUTS]


def check_inputs(inputs: Sequence[str], network: dict, stage_name: str, has_roi: bool) -> None:
    """The stage's inputs against its network: known names, "ct" first, ``in_channels`` equal to
    their number, and a previous stage's liver for the vesselness channel. ModelError otherwise."""
    unknown = [name for name in inputs if name not in INPUTS]
    fix = "fix the stage's 'inputs' or network.args.in_channels in model.json"
    if unknown or not inputs or inputs[0] != "ct" or len(set(inputs)) != len(inputs):
        raise ModelError(f"model stage '{stage_name}' has inputs {list(inputs)}: the first must be "
                         f"'ct', each once, from {list(INPUTS)}", fix)
    channels = network.get("args", {}).get("in_channels", 1)
    if channels != len(inputs):
        raise ModelError(f"model stage '{stage_name}' feeds {len(inputs)} input channel(s) "
                         f"{list(inputs)} to a network with in_channels={channels}", fix)
    if "vesselness" in inputs and not has_roi:
        raise ModelError(f"model stage '{stage_name}' asks for the vesselness input but has no 'roi' "
                         "stage before it to find the liver", "give the stage an 'roi' from a liver stage")


def vesselness_channel(hu: np.ndarray, liver: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """The ``"vesselness"`` input (float32 in [0, 1], the grid of ``hu``): see the module note."""
    from scipy import ndimage  # loaded on first use (the card check imports this module)

    from .vesselness import vesselness

    hu = np.asarray(hu, np.float32)
    liver = np.asarray(liver, bool)
    out = np.zeros(hu.shape, np.float32)
    if not liver.any():
        return out
    spacing = np.asarray(spacing_zyx, float)
    grow = np.maximum(1, np.round(LIVER_GROW_MM / spacing)).astype(int)
    grown = ndimage.maximum_filter(liver, size=tuple(2 * grow + 1)).astype(bool)  # box, separable
    bright = grown & (hu > float(np.median(hu[liver])) + MIN_CONTRAST_HU)
    if not bright.any():
        return out
    response = vesselness(hu, grown, spacing, where=bright)
    return np.clip(response / np.float32(SCALE_HU), 0.0, 1.0, out=response)


def extra_channels(hu: np.ndarray, inputs: Sequence[str], liver: Optional[np.ndarray] = None,
                   spacing_zyx: Optional[Sequence[float]] = None) -> Optional[np.ndarray]:
    """[E, z, y, x] float32: the stage's input channels after the CT (None for a CT-only stage),
    for a CT on the stage grid."""
    channels = []
    for name in inputs[1:]:
        if name == "vesselness":
            if liver is None or spacing_zyx is None:
                raise ValueError("the vesselness input needs the liver mask and the grid spacing")
            channels.append(vesselness_channel(hu, liver, spacing_zyx))
        elif name == "blob":
            # torch loads on first use: the card check (module start-up) imports this module
            from .blobness import blob_channel

            if spacing_zyx is None:
                raise ValueError("the blob input needs the grid spacing")
            channels.append(blob_channel(hu, spacing_zyx))
    return np.stack(channels) if channels else None


def stage_inputs(hu: np.ndarray, inputs: Sequence[str], window_hu: Sequence[float],
                 liver: Optional[np.ndarray] = None,
                 spacing_zyx: Optional[Sequence[float]] = None) -> np.ndarray:
    """[C, z, y, x] float32: the stage's input channels for a CT on the stage grid."""
    extra = extra_channels(hu, inputs, liver, spacing_zyx)
    ct = normalize(hu, window_hu)[None]
    return ct if extra is None else np.concatenate([ct, extra])
