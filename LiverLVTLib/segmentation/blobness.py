"""Tumor-like blobs: the ``"blob"`` input channel (a stage's ``inputs``, :mod:`.inputs`).

Liver tumors are compact, roughly ellipsoidal regions brighter (hyper-enhancing HCC in the
arterial phase) or darker (hypo-attenuating metastases, washout) than the parenchyma; hepatic
veins are tubes. The scale-normalised determinant of the Hessian (Lindeberg, IJCV 1998, "Feature
detection with automatic scale selection"; the blob detector of SURF) separates the two: a tube
has one eigenvalue near zero, so its determinant is near zero, a blob has three of one sign.
MHP-Net (IEEE Access 2025) feeds such a multiscale Hessian blob map to a liver-tumor network and
reports Dice 0.69 from 7 training tumors (../shared/notes/model-levers.md, lever 3).

Here: HU clipped to ``HU_CLIP`` (bone and air edges would dwarf a 20 HU lesion), on a grid
coarsened to about ``GRID_MM`` (block means: the smallest sigma spans a voxel there, and the
channel costs an eighth of the full grid), smoothed at each sigma of ``SIGMAS_MM`` (sigma =
r / sqrt(3) peaks on a ball of radius r: lesions about 8-17 mm across), the Hessian by central
differences in mm; where all three eigenvalues share a sign (Sylvester's criterion on the leading
minors: no eigen-decomposition) the score is sigma^2 times the geometric mean of their
magnitudes, signed (+ bright blob, - dark blob), strongest over the scales, divided by
``SCALE_HU``, clipped to [-1, 1] and brought back to the full grid (trilinear). A fixed scale, so
a faint lesion gives a faint channel, as in the CT. The same function serves training (on each
augmented patch, after the synthetic tumors are drawn in, so they carry their own blob) and
inference (on the stage grid); both pad by replicating the edge.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

HU_CLIP = (-100.0, 300.0)
SIGMAS_MM = (2.5, 3.5, 5.0)
SCALE_HU = 10.0  # score that maps to 1.0: a +25 HU ball 12 mm across scores about 7.5 (full grid)
GRID_MM = 2.5    # the coarse grid the scores are computed on


def _second_derivatives(x: torch.Tensor, spacing_zyx: Sequence[float]):
    """(zz, yy, xx, zy, zx, yx) of a [D, H, W] tensor by central differences in mm, edges
    replicated."""
    p = F.pad(x[None, None], (1, 1, 1, 1, 1, 1), mode="replicate")[0, 0]
    c = p[1:-1, 1:-1, 1:-1]
    sz, sy, sx = (float(s) for s in spacing_zyx)

    def at(dz: int, dy: int, dx: int) -> torch.Tensor:
        d, h, w = x.shape
        return p[1 + dz:1 + dz + d, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    zz = (at(1, 0, 0) - 2 * c + at(-1, 0, 0)) / sz ** 2
    yy = (at(0, 1, 0) - 2 * c + at(0, -1, 0)) / sy ** 2
    xx = (at(0, 0, 1) - 2 * c + at(0, 0, -1)) / sx ** 2
    zy = (at(1, 1, 0) - at(1, -1, 0) - at(-1, 1, 0) + at(-1, -1, 0)) / (4 * sz * sy)
    zx = (at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)) / (4 * sz * sx)
    yx = (at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)) / (4 * sy * sx)
    return zz, yy, xx, zy, zx, yx


def _signed_blobness(h, sigma: float) -> torch.Tensor:
    """sigma^2 * |det H|^(1/3), + where H is negative definite (bright blob), - where positive
    definite (dark blob), 0 elsewhere (saddles, tubes, sheets)."""
    zz, yy, xx, zy, zx, yx = h
    minor2 = zz * yy - zy * zy
    det = zz * (yy * xx - yx * yx) - zy * (zy * xx - yx * zx) + zx * (zy * yx - yy * zx)
    bright = (zz < 0) & (minor2 > 0) & (det < 0)
    dark = (zz > 0) & (minor2 > 0) & (det > 0)
    magnitude = det.abs().pow(1.0 / 3.0) * sigma ** 2
    return torch.where(bright, magnitude, torch.where(dark, -magnitude, torch.zeros_like(magnitude)))


def blob_channel(hu, spacing_zyx: Sequence[float]):
    """The ``"blob"`` input in [-1, 1] for a [D, H, W] HU volume (numpy array or torch tensor; the
    result is of the same kind, float32, on the same device): see the module note."""
    from monai.networks.layers import separable_filtering
    from monai.networks.layers.convutils import gaussian_1d

    as_numpy = isinstance(hu, np.ndarray)
    # a copy of a numpy input: the stage grid's array is a read-only view
    x = torch.from_numpy(np.array(hu, np.float32)) if as_numpy else hu.float()
    shape = tuple(x.shape)
    factor = [max(1, int(round(GRID_MM / float(s)))) for s in spacing_zyx]
    pad = [(-n) % f for n, f in zip(shape, factor)]
    x = F.pad(x.clamp(*HU_CLIP)[None, None], (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
    x = F.avg_pool3d(x, factor)
    spacing_zyx = [float(s) * f for s, f in zip(spacing_zyx, factor)]
    best = torch.zeros(x.shape[2:], dtype=torch.float32, device=x.device)
    for sigma in SIGMAS_MM:
        kernels = [gaussian_1d(torch.tensor(sigma / float(s)), truncated=3.0).to(x.device)
                   for s in spacing_zyx]
        smooth = separable_filtering(x, kernels, mode="replicate")[0, 0]
        score = _signed_blobness(_second_derivatives(smooth, spacing_zyx), sigma)
        best = torch.where(score.abs() > best.abs(), score, best)
    out = (best / SCALE_HU).clamp_(-1.0, 1.0)[None, None]
    out = F.interpolate(out, scale_factor=factor, mode="trilinear", align_corners=False)
    out = out[0, 0, :shape[0], :shape[1], :shape[2]].contiguous()
    return out.numpy() if as_numpy else out
