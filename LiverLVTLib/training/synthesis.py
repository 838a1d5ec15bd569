"""SynthSeg-style CT-like images from label-only IRCAD maps (tissue classes of
:data:`dataset.TISSUE_CLASSES`), drawn on the device for each training patch.

Each draw samples a plausible contrast phase: liver attenuation, portal/hepatic vein and artery
enhancement relative to it, hypo- (mostly) or hyper-dense tumors, bone, fat/muscle body texture
(a smooth random field), per-tissue texture noise, partial-volume blur, a smooth bias field and
scanner noise. Values are HU, so the same random windowing and normalisation as for real CT
apply afterwards.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .dataset import TISSUE_CLASSES

T = {name: i for i, name in enumerate(TISSUE_CLASSES)}


def _u(gen, lo, hi, device):
    return lo + (hi - lo) * torch.rand((), generator=gen, device=device).item()


def smooth_field(shape, gen, device, cells: int = 4) -> torch.Tensor:
    """A smooth random field in [0, 1] of ``shape`` [D, H, W]."""
    coarse = torch.rand((1, 1, cells, cells, cells), generator=gen, device=device)
    return F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a [D, H, W] tensor (sigma in voxels, replicate padding)."""
    if sigma < 0.2:
        return x
    radius = max(1, int(round(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = x[None, None]
    for dim in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + dim] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = radius
        x = F.conv3d(F.pad(x, pad, mode="replicate"), k.reshape(shape))
    return x[0, 0]


def tissue_means(gen, device) -> torch.Tensor:
    """Random HU per tissue class for one synthetic 'scan'."""
    liver = _u(gen, 50, 140, device)
    hyper = torch.rand((), generator=gen, device=device).item() < 0.2
    tumor = liver + (_u(gen, 15, 60, device) if hyper else -_u(gen, 15, 85, device))
    means = {
        "air": -1000.0, "body": 0.0, "bone": _u(gen, 250, 900, device), "liver": liver,
        "vein": liver + _u(gen, -5, 120, device), "artery": _u(gen, 120, 350, device),
        "tumor": tumor, "cyst": _u(gen, -5, 25, device), "kidney": _u(gen, 100, 250, device),
        "spleen": liver + _u(gen, -15, 40, device), "lung": _u(gen, -900, -750, device),
        "bile": _u(gen, -5, 30, device), "organ": _u(gen, 20, 90, device),
        "metal": _u(gen, 800, 2000, device)}
    return torch.tensor([means[n] for n in TISSUE_CLASSES], device=device)


def synthesize(tissue: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Tissue-class patch [D, H, W] (long) -> synthetic HU patch (float32)."""
    device = tissue.device
    shape = tissue.shape
    means = tissue_means(gen, device)
    hu = means[tissue]
    # body: fat/muscle mixture from a smooth field
    fat, muscle = _u(gen, -130, -70, device), _u(gen, 30, 65, device)
    mix = (smooth_field(shape, gen, device, cells=6) > _u(gen, 0.35, 0.65, device)).float()
    mix = gaussian_blur(mix, 1.5)
    body = fat + (muscle - fat) * mix
    hu = torch.where(tissue == T["body"], body, hu)
    # per-tissue texture, partial-volume blur, bias field, scanner noise
    texture = torch.randn(shape, generator=gen, device=device) * _u(gen, 3, 15, device)
    hu = hu + gaussian_blur(texture, 1.0)
    hu = gaussian_blur(hu, _u(gen, 0.3, 1.0, device))
    hu = hu * (1 + (smooth_field(shape, gen, device) - 0.5) * _u(gen, 0, 0.1, device))
    hu = hu + torch.randn(shape, generator=gen, device=device) * _u(gen, 4, 20, device)
    return hu
