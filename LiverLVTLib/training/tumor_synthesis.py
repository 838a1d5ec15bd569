"""Synthetic liver tumors inserted on the fly into training patches of real (or synthesized) CT.

After Hu et al., "Label-Free Liver Tumor Segmentation", CVPR 2023 (MrGiovanni/SyntheticTumors):
elastically deformed ellipsoids in size classes tiny (r 4 mm) / small (8) / medium (16) /
large (32 mm), each radius U(0.75 r, 1.25 r), multi-focal draws, a Gaussian-filtered noise
texture, a blurred edge, and an HU offset relative to the local liver parenchyma. Hu et al.
report synthetic-only training matching real tumors on LiTS (DSC 59.8 vs 57.6 %).

What this data needs beyond Hu's recipe (the shared data mixes arterial / portal-venous /
equilibrium phases of HCC and colorectal metastases):
- phase-aware appearance: hypo-attenuating in portal-venous and equilibrium phases; in the
  arterial phase mostly hyper-enhancing (HCC arterial phase hyper-enhancement, LI-RADS v2018),
  with "washout" (hypo) and an enhancing capsule rim in the equilibrium phase (LI-RADS v2018
  major features);
- heterogeneous, necrotic (near-fluid) and occasionally calcified cores in medium/large tumors;
- subcapsular tumors that bulge a few mm past the liver contour, and exophytic medium/large
  tumors centred on the liver surface that stand out of it by up to half their radius (large
  HCC is often exophytic / pedunculated; the cross-validation's 84 mL peripheral tumor of
  ircadb-1.1 lay one third outside the predicted liver): the liver label grows with them;
- simple cysts (water density 0-20 HU, homogeneous, sharp-edged, round; ACR white paper on
  incidental liver lesions): label 3 marks any focal liver lesion, and the analysis's cyst
  triage tells cysts from tumors, so the network must find cysts too;
- hepatic / portal veins keep running beside and through the tumor: voxels labelled vessel, and
  enhancing voxels well above the parenchyma (unlabelled veins), keep their HU and never become
  tumor (Pixel2Cancer, MICCAI 2024, keeps vessels out of synthetic tumors) — so the tumor channel
  learns that bright tubes are not tumor.

Works on one patch ``hu [D, H, W]`` (float32 HU) with its multi-hot ``target [3, D, H, W]``
(liver ⊇ vessel ∪ tumor), on the patch's device, drawing from a torch ``Generator``
(deterministic for a seed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .synthesis import gaussian_blur

# size classes of Hu et al.: (radius mm, (min count, max count) per liver); per patch we draw at
# most ``max_per_patch`` of a class, since a 96^3 patch at 1.25 mm holds a part of the liver only
SIZE_CLASSES: Dict[str, Tuple[float, Tuple[int, int]]] = {
    "tiny": (4.0, (3, 10)), "small": (8.0, (3, 10)), "medium": (16.0, (2, 5)), "large": (32.0, (1, 3))}
MEDIUM_MM = SIZE_CLASSES["medium"][0]  # medium and large tumors may be necrotic or exophytic
PHASES = ("arterial", "portal-venous", "equilibrium")
# share of hyper-enhancing tumors by phase: arterial-phase hyper-enhancement of HCC (LI-RADS v2018
# major feature "APHE"); portal-venous and equilibrium tumors default to hypo-attenuation / washout
HYPER_PROBABILITY = {"arterial": 0.7, "portal-venous": 0.0, "equilibrium": 0.0}
# |HU offset| of a tumor's mean from the liver parenchyma, by look: hyper-enhancing, hypo-
# attenuating (portal-venous, non-APHE arterial), equilibrium-phase washout. The defaults keep
# every synthetic tumor plainly visible; the real tumors of ../shared read 16-37 HU off the
# parenchyma's median (tools/tumor_contrast.py), the subtle end of these ranges
CONTRAST_HU = {"hyper": (25.0, 80.0), "hypo": (25.0, 100.0), "washout": (20.0, 60.0)}


@dataclass
class TumorSynthesisConfig:
    probability: float = 0.5          # share of eligible patches that receive synthetic tumors
    class_probs: Dict[str, float] = field(default_factory=lambda: {
        "tiny": 0.2, "small": 0.2, "medium": 0.2, "large": 0.2, "mix": 0.2})
    max_per_patch: int = 3
    min_liver_fraction: float = 0.05  # a patch with less liver gets none
    bulge_probability: float = 0.3    # subcapsular tumors may pass the liver edge by up to bulge_mm
    bulge_mm: float = 6.0
    necrosis_probability: float = 0.5  # medium/large tumors
    calcification_probability: float = 0.05
    vessel_keep_hu: float = 40.0      # voxels this far above the parenchyma are kept as vessels
    cyst_probability: float = 0.15    # simple cysts: water density, homogeneous, sharp, round
    exophytic_probability: float = 0.0  # medium/large tumors centred on the liver surface
    exophytic_fraction: float = 0.5   # ... standing out of the liver by up to this share of r
    surface_mm: float = 4.0           # the liver surface band their centres are drawn from
    exophytic_fill_max_hu: Optional[float] = None  # outside tissue they may fill: HU below this
    #   (None: parenchyma + vessel_keep_hu, soft tissue and fat; -20: fat only, so adjacent
    #   organs such as stomach, bowel, adrenal glands and kidneys stay outside the tumor)
    hyper_probability: Dict[str, float] = field(default_factory=lambda: dict(HYPER_PROBABILITY))
    #   by phase; a portal-venous share stands for hypervascular lesions that stay bright (HCC,
    #   neuroendocrine and renal-cell metastases); phases left out keep the defaults
    contrast_hu: Dict[str, Tuple[float, float]] = field(default_factory=lambda: dict(CONTRAST_HU))
    #   |HU offset| ranges from the parenchyma by look ("hyper", "hypo", "washout"); kinds left
    #   out keep the defaults
    keep_grain: bool = False          # the CT's own noise grain stays inside the lesion

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> "TumorSynthesisConfig":
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown tumor_synthesis keys: {sorted(unknown)}")
        if "hyper_probability" in data:
            hyper = dict(data["hyper_probability"])
            if set(hyper) - set(PHASES) or not all(0 <= float(v) <= 1 for v in hyper.values()):
                raise ValueError(f"tumor_synthesis hyper_probability: phases {list(PHASES)}, "
                                 f"values 0-1; got {hyper}")
            data["hyper_probability"] = {**HYPER_PROBABILITY, **{k: float(v) for k, v in hyper.items()}}
        if "contrast_hu" in data:
            ranges = {k: tuple(float(x) for x in v) for k, v in dict(data["contrast_hu"]).items()}
            if set(ranges) - set(CONTRAST_HU) or not all(len(r) == 2 and 0 <= r[0] <= r[1] for r in ranges.values()):
                raise ValueError(f"tumor_synthesis contrast_hu: kinds {list(CONTRAST_HU)}, each "
                                 f"[low, high] HU with 0 <= low <= high; got {data['contrast_hu']}")
            data["contrast_hu"] = {**CONTRAST_HU, **ranges}
        return cls(**data)


def _u(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, device=gen.device))


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen, device=gen.device))


def draw_radii(cfg: TumorSynthesisConfig, gen: torch.Generator) -> list:
    """Tumor base radii (mm) for one patch: one size class (or a mix), a multi-focal count."""
    names = list(cfg.class_probs)
    weights = [max(0.0, float(cfg.class_probs[n])) for n in names]
    draw, pick = _u(gen, 0, sum(weights)), names[-1]
    for name, w in zip(names, weights):
        if draw < w:
            pick = name
            break
        draw -= w
    if pick == "mix":
        classes = [list(SIZE_CLASSES)[_randint(gen, 0, len(SIZE_CLASSES) - 1)]
                   for _ in range(_randint(gen, 1, cfg.max_per_patch))]
    else:
        lo, hi = SIZE_CLASSES[pick][1]
        classes = [pick] * min(cfg.max_per_patch, _randint(gen, lo, hi))
    return [SIZE_CLASSES[c][0] for c in classes]


def ellipsoid_field(shape: Sequence[int], centre: Sequence[float], radii_vox: Sequence[float],
                    gen: torch.Generator, elastic: float = 0.25) -> torch.Tensor:
    """Normalised 'radius' field of a randomly rotated, elastically deformed ellipsoid over a box:
    < 1 inside. ``centre`` and ``radii_vox`` in box voxels (z, y, x)."""
    device = gen.device
    axes = [torch.arange(n, device=device, dtype=torch.float32) - c for n, c in zip(shape, centre)]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    p = torch.stack([zz, yy, xx], -1)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, device=device))  # random rotation
    p = p @ q
    r = torch.tensor(list(radii_vox), device=device, dtype=torch.float32)
    rho = torch.sqrt(((p / r) ** 2).sum(-1))
    # elastic deformation: a smooth random field scales the radius by 1 ± elastic
    coarse = torch.rand((1, 1, 4, 4, 4), generator=gen, device=device) * 2 - 1
    warp = F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]
    return rho / (1 + elastic * warp)


def noise_texture(shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    """Hu's texture: uniform noise, Gaussian-filtered (σ 1-3 vox at this grid), zero mean, unit std."""
    t = gaussian_blur(torch.rand(tuple(shape), generator=gen, device=gen.device), _u(gen, 1.0, 3.0))
    return (t - t.mean()) / t.std().clamp_min(1e-6)


def appearance(phase: Optional[str], parenchyma: float, gen: torch.Generator,
               hyper: Optional[Dict[str, float]] = None,
               contrast: Optional[Dict[str, Tuple[float, float]]] = None) -> dict:
    """HU offset from the parenchyma, texture amplitude and rim, by contrast phase; ``hyper``:
    the share of hyper-enhancing tumors by phase (default :data:`HYPER_PROBABILITY`);
    ``contrast``: the |offset| ranges by look (default :data:`CONTRAST_HU`)."""
    phase = phase if phase in PHASES else PHASES[_randint(gen, 0, 2)]
    contrast = contrast or CONTRAST_HU
    r = _u(gen, 0, 1)
    # contrasts stay visible (Hu et al. draw 65-145 HU): a tumor labelled where the image shows
    # none teaches the tumor channel to fire on plain parenchyma
    if r < (hyper or HYPER_PROBABILITY).get(phase, 0.0):  # hyper-enhancing (arterial: APHE)
        offset = _u(gen, *contrast["hyper"])
    elif phase == "equilibrium":           # washout
        offset = -_u(gen, *contrast["washout"])
    else:                                  # hypo-attenuating (portal-venous; arterial non-APHE)
        offset = -_u(gen, *contrast["hypo"])
    rim = _u(gen, 10, 35) if phase == "equilibrium" and _u(gen, 0, 1) < 0.3 else 0.0  # capsule
    # a tumor never reads as fat or denser than contrast-filled vessels here
    mean = min(max(parenchyma + offset, 0.0), parenchyma + 90.0)
    return {"mean": mean, "texture": _u(gen, 4, 18), "rim": rim, "phase": phase}


def _one_tumor(hu, keep, liver_ok, centre_vox, radius_mm, spacing, phase, parenchyma, cfg, gen,
               outside=None, grain=None):
    """Paint one tumor into ``hu`` in place; returns its label mask (bool, patch). ``outside``
    (exophytic tumors): the soft tissue beyond the liver it may fill, besides ``liver_ok``;
    ``grain``: the patch's own noise (:func:`ct_grain`), added to the lesion's HU."""
    radii = [radius_mm * _u(gen, 0.75, 1.25) / s for s in spacing]
    half = [int(math.ceil(1.6 * r)) + 2 for r in radii]
    lo = [max(0, int(c) - h) for c, h in zip(centre_vox, half)]
    hi = [min(n, int(c) + h + 1) for c, h, n in zip(centre_vox, half, hu.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = [b - a for a, b in zip(lo, hi)]
    cyst = _u(gen, 0, 1) < cfg.cyst_probability
    rho = ellipsoid_field(shape, [c - a for c, a in zip(centre_vox, lo)], radii, gen,
                          elastic=0.08 if cyst else 0.25)
    inside = rho < 1
    tex = noise_texture(shape, gen)
    own = 0.0 if grain is None else grain[box]
    if cyst:
        return _paint(hu, keep, liver_ok[box], box, inside, _u(gen, 0, 20) + _u(gen, 1, 4) * tex + own,
                      _u(gen, 0.4, 0.7))
    look = appearance(phase, parenchyma, gen, cfg.hyper_probability, cfg.contrast_hu)
    tumor_hu = look["mean"] + look["texture"] * tex
    large = radius_mm >= MEDIUM_MM
    if large and _u(gen, 0, 1) < cfg.necrosis_probability:  # necrotic, near-fluid core
        core = rho < _u(gen, 0.35, 0.7)
        tumor_hu = torch.where(core, _u(gen, 5, 30) + 6 * tex, tumor_hu)
    if large and _u(gen, 0, 1) < cfg.calcification_probability:  # coarse calcifications
        specks = gaussian_blur(torch.rand(tuple(shape), generator=gen, device=gen.device), 1.0)
        tumor_hu = torch.where((specks > specks.quantile(0.995)) & (rho < 0.8), _u(gen, 250, 600), tumor_hu)
    if look["rim"]:
        tumor_hu = tumor_hu + look["rim"] * ((rho > 0.85) & (rho < 1.0)).float()
    allowed = liver_ok[box]
    if outside is not None:  # exophytic: out of the liver by up to exophytic_fraction * radius
        reach = [cfg.exophytic_fraction * radius_mm / s for s in spacing]
        allowed = allowed | (within_voxels(liver_ok[box], reach) & outside[box])
    elif _u(gen, 0, 1) < cfg.bulge_probability:  # subcapsular bulge past the liver contour
        allowed = within_voxels(liver_ok[box], [cfg.bulge_mm / s for s in spacing])
    return _paint(hu, keep, allowed, box, inside, tumor_hu + own, _u(gen, 0.6, 1.5))


def ct_grain(hu: torch.Tensor, parenchyma: float, sigma: float = 1.5, reach_hu: float = 60.0) -> torch.Tensor:
    """The patch's fine noise: HU minus its Gaussian blur (``sigma`` voxels), where the CT and
    its blur read like parenchyma (within ``reach_hu`` and ``reach_hu`` / 3 of it; elsewhere 0:
    edges of fat, bone and bright veins are not noise). A painted lesion replaces the CT inside
    it; with this grain added it keeps the scan's own noise, as real tumors do (inside-tumor SD
    15-37 HU in ../shared against a smooth texture of 4-18 HU without it), so smoothness is no
    shortcut to the label."""
    blur = gaussian_blur(hu, sigma)
    residual = hu - blur
    near = ((hu - parenchyma).abs() < reach_hu) & ((blur - parenchyma).abs() < reach_hu / 3)
    return torch.where(near, residual.clamp(-reach_hu, reach_hu), torch.zeros_like(hu))


def _paint(hu, keep, allowed, box, inside, lesion_hu, edge_sigma):
    """Blend ``lesion_hu`` into ``hu`` over ``inside & allowed`` minus kept veins, with a blurred
    edge; returns the lesion's label mask over the whole patch."""
    mask = inside & allowed & ~keep[box]
    alpha = gaussian_blur(mask.float(), edge_sigma) * (~keep[box]).float()
    hu[box] = hu[box] * (1 - alpha) + lesion_hu * alpha
    label = torch.zeros_like(keep)
    label[box] = mask
    return label


def _exophytic_sites(hu, liver, eligible, parenchyma, spacing, cfg, wanted: bool):
    """Centres for exophytic tumors (eligible liver voxels within ``surface_mm`` of the liver
    surface) and the tissue outside the liver they may fill: soft tissue and fat, not air, lung,
    bone or enhancing organs and vessels (HU -150 .. parenchyma + vessel_keep_hu, or up to
    ``exophytic_fill_max_hu``: -20 keeps to fat). None when the option is off or the patch
    draws no medium / large tumor (``wanted``)."""
    if cfg.exophytic_probability <= 0 or not wanted:
        return eligible.new_zeros((0, 3), dtype=torch.long), None
    inner = ~within_voxels(~liver, [cfg.surface_mm / s for s in spacing])
    top = parenchyma + cfg.vessel_keep_hu if cfg.exophytic_fill_max_hu is None else cfg.exophytic_fill_max_hu
    outside = ~liver & (hu > -150) & (hu < top)
    return torch.nonzero(eligible & ~inner), outside


def within_voxels(mask: torch.Tensor, radius_vox: Sequence[float]) -> torch.Tensor:
    """Mask grown by about ``radius_vox`` (z, y, x) voxels (max pooling, box-shaped). A box is
    the product of three segments, so it is pooled one axis at a time: the same mask at a cost
    that grows with the radius, not its cube (a 7-voxel box: 0.19 -> 0.03 s per 96^3 patch)."""
    grown = mask[None, None].float()
    for axis, r in enumerate(radius_vox):
        k = max(1, 2 * int(round(r)) + 1)
        if k == 1:
            continue
        size, pad = [1, 1, 1], [0, 0, 0]
        size[axis], pad[axis] = k, k // 2
        grown = F.max_pool3d(grown, kernel_size=size, stride=1, padding=pad)
    return grown[0, 0] > 0


def insert_tumors(hu: torch.Tensor, target: torch.Tensor, spacing: Sequence[float],
                  phase: Optional[str], gen: torch.Generator,
                  cfg: Optional[TumorSynthesisConfig] = None) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Insert synthetic tumors into the liver of one patch.

    ``hu`` [D, H, W] float HU, ``target`` [3, D, H, W] multi-hot (bool or float), ``spacing`` the
    patch voxel size in mm (z, y, x). Returns (new hu, new target, number of tumors). The caller
    decides whether a patch is eligible (liver and tumor annotated); real tumors are avoided.
    """
    cfg = cfg or TumorSynthesisConfig()
    target = target.bool()
    liver, vessel, tumor = target[0], target[1], target[2]
    parenchyma_mask = liver & ~vessel & ~tumor
    if parenchyma_mask.float().mean() < cfg.min_liver_fraction:
        return hu, target, 0
    parenchyma = float(hu[parenchyma_mask].median())
    # veins: labelled vessel, or enhancing well above the parenchyma (unlabelled veins); real tumors
    keep = vessel | ((hu > parenchyma + cfg.vessel_keep_hu) & liver)
    liver_ok = liver
    if tumor.any():
        keep = keep | within_voxels(tumor, [2 / s for s in spacing])
        liver_ok = liver & ~within_voxels(tumor, [3 / s for s in spacing])
    candidates = torch.nonzero(liver_ok & ~keep)
    if not len(candidates):
        return hu, target, 0
    radii = draw_radii(cfg, gen)
    surface, outside = _exophytic_sites(hu, liver, liver_ok & ~keep, parenchyma, spacing, cfg,
                                        any(r >= MEDIUM_MM for r in radii))
    grain = ct_grain(hu, parenchyma) if cfg.keep_grain else None
    hu = hu.clone()
    added = torch.zeros_like(liver)
    count = 0
    for radius in radii:
        exophytic = (radius >= MEDIUM_MM and len(surface) > 0
                     and _u(gen, 0, 1) < cfg.exophytic_probability)
        sites = surface if exophytic else candidates
        centre = sites[_randint(gen, 0, len(sites) - 1)].tolist()
        label = _one_tumor(hu, keep, liver_ok, centre, radius, spacing, phase, parenchyma, cfg, gen,
                           outside=outside if exophytic else None, grain=grain)
        if label.any():
            added |= label
            count += 1
    target = target.clone()
    target[2] |= added
    target[0] |= added  # hierarchy: liver ⊇ tumor (a bulging tumor enlarges the liver)
    target[1] &= ~added
    return hu, target, count
