"""Sliding-window inference of one model stage (MONAI SlidingWindowInferer, Gaussian weights).

Input: a CT already on the stage's grid (canonical orientation, model spacing). Output: sigmoid
probabilities [3, z, y, x] (liver, vessel, tumor). Optional flip test-time augmentation averages
the probabilities of the flipped passes. On CUDA the network runs in mixed precision; when the
GPU runs out of memory the stage is retried with one window per batch, then on the CPU.

CPU options (model card ``inference``): ``cpu_precision`` "bf16" runs the network under bfloat16
autocast where the CPU has it natively (AVX512-BF16/AMX; elsewhere fp32, emulated bf16 is far
slower), "fp32" (default) in full precision;
``channels_last`` puts the network and its windows in the channels-last-3d memory format.
Probabilities are float32 either way (no float64 array at full resolution).
"""
from __future__ import annotations

import logging
import math
from typing import Callable, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..core.device import cpu_has_native_bf16
from ..core.preprocess import normalize
from ..core.progress import ProgressFn, no_progress

log = logging.getLogger("liverlvt")


def count_windows(shape: Sequence[int], roi: Sequence[int], overlap: float) -> int:
    """Number of sliding windows MONAI visits for ``shape`` (used for progress only)."""
    total = 1
    for size, window in zip(shape, roi):
        if size <= window:
            continue
        step = max(1, int(window * (1 - overlap)))
        total *= math.ceil((size - window) / step) + 1
    return total


class _Watched:
    """Wraps the network so every batch of windows reports progress and honours Cancel."""

    def __init__(self, network, batches: int, progress: ProgressFn, stage: str,
                 check: Callable[[], None], memory_format=None):
        self.network, self.batches, self.progress, self.stage, self.check = (
            network, max(1, batches), progress, stage, check)
        self.memory_format = memory_format
        self.done = 0

    def __call__(self, x):
        self.check()
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        out = self.network(x)
        if isinstance(out, (list, tuple)):  # deep-supervision heads: keep the full-resolution one
            out = out[0]
        self.done += 1
        self.progress(self.stage, min(1.0, self.done / self.batches))
        return out


def _flip_sets(tta_flips) -> List[tuple]:
    return [()] + [tuple(int(a) for a in axes) for axes in (tta_flips or [])]


def _autocast(device, cpu_precision: str):
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and cpu_precision == "bf16" and cpu_has_native_bf16(torch):
        return torch.autocast("cpu", dtype=torch.bfloat16)  # emulated bf16 is slower: fp32 there
    return _null()


def _run(network, volume: np.ndarray, patch, overlap, batch, device, stage, flips, progress, check,
         cpu_precision: str = "fp32", channels_last: bool = False):
    import torch
    from monai.inferers import SlidingWindowInferer

    inferer = SlidingWindowInferer(roi_size=list(patch), sw_batch_size=batch, overlap=overlap,
                                   mode="gaussian", padding_mode="constant", cval=0.0)
    windows = count_windows(volume.shape, patch, overlap)
    batches = math.ceil(windows / batch) * len(flips)
    memory_format = torch.channels_last_3d if channels_last else None
    if memory_format is not None:
        network = network.to(memory_format=memory_format)
    watched = _Watched(network, batches, progress, stage, check, memory_format)
    x = torch.from_numpy(volume)[None].to(device)  # volume: [C, z, y, x]
    total = None
    with torch.inference_mode(), _autocast(device, cpu_precision):
        for axes in flips:
            dims = [a + 2 for a in axes]
            xi = torch.flip(x, dims) if dims else x
            prob = torch.sigmoid(inferer(xi, watched).float())
            prob = torch.flip(prob, dims) if dims else prob
            total = prob if total is None else total + prob
    return (total / len(flips))[0].float().cpu().numpy()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def predict(stage, network, grid_ct: sitk.Image, device, overlap: float = 0.5,
            sw_batch_size: int = 2, tta_flips=None, progress: Optional[ProgressFn] = None,
            check: Callable[[], None] = lambda: None, stage_label: Optional[str] = None,
            cpu_precision: str = "fp32", channels_last: bool = False,
            extra: Optional[np.ndarray] = None) -> np.ndarray:
    """Probabilities [3, z, y, x] (float32) for a CT on the stage grid, with the OOM fallbacks.
    ``cpu_precision`` ("fp32"/"bf16") and ``channels_last``: see the module note. ``extra``
    [E, z, y, x]: the stage's further input channels after the windowed CT (:mod:`.inputs`)."""
    import torch

    progress = progress or no_progress
    label = stage_label or f"infer-{stage.name}"
    volume = normalize(sitk.GetArrayViewFromImage(grid_ct), stage.window_hu)[None]
    if extra is not None:
        volume = np.concatenate([volume, np.asarray(extra, np.float32)])
    flips = _flip_sets(tta_flips)
    attempts = [(device, sw_batch_size)]
    if device.type == "cuda":
        attempts += [(device, 1), (torch.device("cpu"), sw_batch_size)]
    for index, (dev, batch) in enumerate(attempts):
        try:
            return _run(network.to(dev), volume, stage.patch_size, overlap, batch, dev, label,
                        flips, progress, check, cpu_precision, channels_last)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if index + 1 == len(attempts):
                raise
            nxt = attempts[index + 1]
            log.warning("GPU out of memory in stage '%s'; retrying with %s, %d window(s) per batch",
                        stage.name, nxt[0].type.upper(), nxt[1])
    raise AssertionError("unreachable")
