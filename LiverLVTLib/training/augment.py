"""Device-side patch sampling and augmentation (GPU when available, same code on CPU).

Whole cases live on the device; each training patch is drawn with one ``grid_sample`` through a
random affine (rotation, per-axis scaling, left-right flip with probability ``p_flip``) around a centre that is a hard
negative with probability ``hard_prob`` (see :func:`hard_negative_voxels`), else a foreground
voxel with probability ``fg_prob`` (class-balanced over the annotated classes present: tumor,
vessel, liver) or uniform otherwise. Then intensity: label-only maps are synthesized into HU
(:mod:`synthesis`), real patches may get the equilibrium-phase look (:func:`compress_enhancement`),
then synthetic tumors (:mod:`tumor_synthesis`; with ``tumor_slice_profile`` averaged in z over the
case's own slice spacing, :func:`slice_profile`) and the thick-slice look (:func:`thick_slices`);
every patch gets the LVT random windowing (window centre shift and width scale around the
stage's ``window_hu``), normalisation to [0, 1] and scanner noise.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..segmentation.blobness import blob_channel
from ..segmentation.inputs import CACHED_INPUTS, cached_inputs
from .dataset import HU_STEP, HU_STORE_MIN, multi_hot
from .tumor_synthesis import TumorSynthesisConfig, insert_tumors

# random windowing limits (HU): the LVT augmentation, kept in a plausible abdominal range
WINDOW_SHIFT_HU = 50.0
WINDOW_SCALE = (0.8, 1.25)
FG_CLASS_WEIGHTS = (0.3, 0.3, 0.4)  # liver, vessel, tumor
HARD_SHELL_MM = 15.0   # hard negatives outside the liver: this close to its surface
HARD_VEIN_HU = 40.0    # hard negatives inside the liver: this far above the parenchyma median
THICK_SLICE_MM = (2.5, 5.0)  # thick-slice look: slab thickness range (routine abdominal CT 2.5-5 mm)


def hard_negative_voxels(labels: np.ndarray, hu: Optional[np.ndarray], spacing, annotated,
                         limit: int = 100_000, seed: int = 0,
                         shell_mm: float = HARD_SHELL_MM) -> np.ndarray:
    """Flat indices of voxels the tumor channel must learn to leave alone: what lies just outside
    the liver (inferior vena cava, right kidney, gallbladder, heart above the dome: the demo's and
    the cross-validation's false tumors) and, inside the liver, enhancing voxels well above the
    parenchyma that no vessel label covers (unlabelled portal / hepatic veins). Empty unless the
    case annotates the liver."""
    from ..segmentation.postprocess import within_mm

    if not annotated[0] or not (labels > 0).any():
        return np.empty(0, np.int64)
    liver = labels > 0
    pools = [np.flatnonzero(within_mm(liver, spacing, shell_mm) & ~liver)]
    if hu is not None and not annotated[1]:
        parenchyma = labels == 1
        if parenchyma.any():
            median = float(np.median(hu[parenchyma]))
            pools.append(np.flatnonzero(parenchyma & (hu > median + HARD_VEIN_HU)))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(p, min(p.size, limit // len(pools)), replace=False) for p in pools if p.size]
    return np.concatenate(picked).astype(np.int64) if picked else np.empty(0, np.int64)


def compress_enhancement(hu: torch.Tensor, liver: torch.Tensor, scale: float,
                         ceiling: float = 400.0) -> torch.Tensor:
    """Equilibrium-phase look from an earlier phase: HU above the liver parenchyma's median come
    ``scale`` times closer to it (up to ``ceiling``; above it the shift stays constant), so
    blood pool, spleen and veins lose most of their lead over the liver, as they do minutes after
    the injection (the heart and spleen then read like liver and the network must tell them by
    shape and place, the equilibrium-phase leak seen in cross-validation)."""
    inner = liver.bool()
    median = float(hu[inner].median()) if int(inner.sum()) > 100 else 100.0
    lead = (hu.clamp(max=ceiling) - median).clamp(min=0)
    return hu - (1.0 - scale) * lead


def thick_slices(hu: torch.Tensor, slab: int) -> torch.Tensor:
    """The look of a CT reconstructed in ``slab``-voxel-thick axial slices and interpolated back
    onto this grid (patch axis 0 = z): each slab's mean, then trilinear back to every voxel.
    Partial-volume averaging on thick slices darkens the liver where it thins out (the inferior
    tip, the fissures, the dome) and fakes hypo-attenuating "lesions" there: the commonest false
    tumors of the 5 mm cases (radcttaceomics-2022-ap, -2144-eqp) under recipe v3. ``slab < 2``:
    unchanged."""
    if slab < 2:
        return hu
    pooled = F.avg_pool3d(hu[None, None], kernel_size=(slab, 1, 1), stride=(slab, 1, 1), ceil_mode=True)
    return F.interpolate(pooled, size=tuple(hu.shape), mode="trilinear", align_corners=False)[0, 0]


def slice_profile(delta: torch.Tensor, slab: int) -> torch.Tensor:
    """``delta`` (a patch's HU change, patch axis 0 = z) seen through a ``slab``-voxel-thick
    reconstructed slice: a moving box mean along z (the rectangular slice sensitivity profile of
    a thick axial reconstruction; edges replicated). ``slab < 2``: unchanged."""
    if slab < 2:
        return delta
    x = F.pad(delta[None, None], (0, 0, 0, 0, (slab - 1) // 2, slab // 2), mode="replicate")
    return F.avg_pool3d(x, kernel_size=(slab, 1, 1), stride=1)[0, 0]


def random_window(window: Sequence[float], gen: torch.Generator, device="cpu",
                  shift: float = WINDOW_SHIFT_HU, scale=WINDOW_SCALE) -> Tuple[float, float]:
    """A random HU window around ``window``: centre ± shift, width × U(scale)."""
    low, high = float(window[0]), float(window[1])
    centre, width = (low + high) / 2, high - low
    r = torch.rand(2, generator=gen, device=device).tolist()
    centre += (2 * r[0] - 1) * shift
    width *= scale[0] + (scale[1] - scale[0]) * r[1]
    return centre - width / 2, centre + width / 2


def apply_window(hu: torch.Tensor, window: Tuple[float, float]) -> torch.Tensor:
    low, high = window
    return ((hu - low) / (high - low)).clamp_(0.0, 1.0)


def rotation_matrix(angles: Sequence[float]) -> torch.Tensor:
    """3x3 rotation (z, y, x axis order) from three angles in radians."""
    a, b, c = angles
    rz = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).float()


class PatchSampler:
    """Draws augmented training batches from cases held on ``device``."""

    def __init__(self, cases: List[dict], patch_size: Sequence[int], window_hu: Sequence[float],
                 device="cpu", seed: int = 0, fg_prob: float = 0.6, synth_fraction: float = 0.3,
                 rotate_deg: float = 15.0, scale=(0.85, 1.15), p_rotate: float = 0.5,
                 p_scale: float = 0.5, p_flip: float = 0.5, noise_std: float = 0.03,
                 tumor_synthesis: Optional[dict] = None, hard_prob: float = 0.0,
                 hard_shell_mm: float = HARD_SHELL_MM, compress_prob: float = 0.0,
                 compress_scale=(0.4, 0.9), thick_prob: float = 0.0, thick_mm=THICK_SLICE_MM,
                 extras: Sequence[str] = (), tumor_per_lesion: float = 0.0,
                 tumor_slice_profile: bool = False):
        self.device = torch.device(device)
        self.tumor_slice_profile = bool(tumor_slice_profile)
        self.extras = list(extras)  # input channels after the CT, in the network's order
        self.tumor_per_lesion = float(tumor_per_lesion)
        self.patch = [int(p) for p in patch_size]
        self.window = [float(w) for w in window_hu]
        self.fg_prob, self.rotate, self.scale = fg_prob, math.radians(rotate_deg), scale
        self.hard_prob, self.hard_shell_mm = float(hard_prob), float(hard_shell_mm)
        self.compress_prob, self.compress_scale = float(compress_prob), compress_scale
        self.thick_prob, self.thick_mm = float(thick_prob), thick_mm
        self.p_rotate, self.p_scale, self.p_flip, self.noise_std = p_rotate, p_scale, p_flip, noise_std
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(int(seed))
        self.tumor_cfg = (TumorSynthesisConfig.from_dict(tumor_synthesis)
                          if tumor_synthesis is not None else None)
        self.inserted = 0  # synthetic tumors drawn so far (logged by the trainer)
        self.real, self.synth = [], []
        for case in cases:
            item = {"id": case["id"], "annotated": torch.as_tensor(case["annotated"], dtype=torch.float32)}
            labels = case["labels"]
            hot = multi_hot(labels)
            item["target"] = torch.from_numpy(hot).to(self.device, torch.float16)[None]
            if "tissue" in case:
                item["tissue"] = torch.from_numpy(case["tissue"].astype(np.float32)).to(self.device, torch.float16)[None, None]
                self.synth.append(item)
            else:
                # stored HU shifted so that grid_sample's zero padding means HU_STORE_MIN
                img = case["image"].astype(np.float32) * HU_STEP
                item["image"] = torch.from_numpy(img).to(self.device, torch.float16)[None, None]
                self.real.append(item)
            item["extra"] = self._extra_channels(case, cached_inputs(extras))
            item["shape"] = labels.shape
            item["spacing"] = [float(v) for v in case.get("spacing", (1.0, 1.0, 1.0))]
            item["phase"] = case.get("phase")
            item["slice_mm"] = case.get("slice_mm")  # the CT's own slice spacing (None: unknown)
            # foreground voxel lists per annotated class (subsampled for memory)
            fg = []
            for c in range(3):
                idx = np.flatnonzero(hot[c]) if case["annotated"][c] else np.empty(0, int)
                if idx.size > 200_000:
                    idx = np.random.default_rng(c).choice(idx, 200_000, replace=False)
                fg.append(torch.from_numpy(idx.astype(np.int64)))
            item["fg"] = fg
            item["lesions"] = self._lesion_voxels(hot[2], fg[2]) if self.tumor_per_lesion > 0 else []
            item["hard"] = self._hard_negatives(case, labels, item["spacing"])
        if not self.real and not self.synth:
            raise ValueError("no training cases")
        self.synth_fraction = synth_fraction if self.synth else 0.0
        if not self.real:
            self.synth_fraction = 1.0

    def _extra_channels(self, case: dict, extras: Sequence[str]) -> Optional[torch.Tensor]:
        """[1, E, D, H, W] float16 on the device: the case's cached extra input channels."""
        if not extras:
            return None
        missing = [name for name in extras if name not in case]
        if missing:
            raise ValueError(f"case {case['id']} lacks the input channel(s) {missing}")
        stacked = np.stack([np.asarray(case[name], np.float32) for name in extras])
        return torch.from_numpy(stacked).to(self.device, torch.float16)[None]

    def _hard_negatives(self, case: dict, labels: np.ndarray, spacing) -> torch.Tensor:
        """The case's hard-negative centres (none unless ``hard_prob`` asks for them)."""
        if self.hard_prob <= 0:
            return torch.empty(0, dtype=torch.int64)
        hu = None if "tissue" in case else case["image"].astype(np.float32) * HU_STEP + HU_STORE_MIN
        return torch.from_numpy(hard_negative_voxels(labels, hu, spacing, case["annotated"],
                                                     shell_mm=self.hard_shell_mm))

    def _rand(self, *shape):
        return torch.rand(shape, generator=self.gen, device=self.device)

    @staticmethod
    def _lesion_voxels(tumor: np.ndarray, tumor_fg: torch.Tensor) -> List[torch.Tensor]:
        """The tumor voxels of ``tumor_fg`` grouped by lesion (26-connected component): with
        probability ``tumor_per_lesion`` a tumor-centred patch picks a lesion uniformly, then a
        voxel of it, so a 0.4 mL lesion is centred as often as an 84 mL one (voxel-uniform picks,
        the rest, centre the large tumor about 200 times more often and keep its whole extent in
        view). Empty without annotated tumors."""
        import cc3d

        if not tumor_fg.numel():
            return []
        flat = tumor_fg.numpy()
        ids = cc3d.connected_components(tumor.astype(bool), connectivity=26).reshape(-1)[flat]
        order = np.argsort(ids, kind="stable")
        cuts = np.flatnonzero(np.diff(ids[order])) + 1
        return [torch.from_numpy(flat[part]) for part in np.split(order, cuts)]

    def _pick(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.gen, device=self.device).item())

    def _centre(self, item) -> List[float]:
        shape = item["shape"]
        if item["hard"].numel() and self._rand(1).item() < self.hard_prob:
            flat = int(item["hard"][self._pick(item["hard"].numel())])
            return [float(v) for v in np.unravel_index(flat, shape)]
        if self._rand(1).item() < self.fg_prob:
            present = [c for c in range(3) if item["fg"][c].numel()]
            if present:
                w = np.cumsum([FG_CLASS_WEIGHTS[c] for c in present])
                c = present[int(np.searchsorted(w, self._rand(1).item() * w[-1], side="right").clip(0, len(present) - 1))]
                if c == 2 and item["lesions"] and self._rand(1).item() < self.tumor_per_lesion:
                    # a lesion first, then one of its voxels
                    lesion = item["lesions"][self._pick(len(item["lesions"]))]
                    flat = int(lesion[self._pick(lesion.numel())])
                else:
                    flat = int(item["fg"][c][self._pick(item["fg"][c].numel())])
                return [float(v) for v in np.unravel_index(flat, shape)]
        return [float(self._rand(1).item() * (s - 1)) for s in shape]

    def _grid(self, item, centre) -> torch.Tensor:
        p = self.patch
        axes = [torch.arange(n, device=self.device, dtype=torch.float32) - (n - 1) / 2 for n in p]
        zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
        offsets = torch.stack([zz, yy, xx], -1).reshape(-1, 3)
        m = torch.eye(3)
        r = self._rand(8).tolist()
        if r[0] < self.p_rotate:
            m = rotation_matrix([(2 * v - 1) * self.rotate for v in r[1:4]]) @ m
        if r[4] < self.p_scale:
            s = self._rand(3).tolist()
            m = m @ torch.diag(torch.tensor([self.scale[0] + (self.scale[1] - self.scale[0]) * v for v in s]))
        if r[5] < self.p_flip:  # left-right flip (x axis), the flip used by the TTA
            m = m @ torch.diag(torch.tensor([1.0, 1.0, -1.0]))
        return offsets @ m.to(self.device).T + torch.tensor(centre, device=self.device)

    def _resample(self, volume: torch.Tensor, coords: torch.Tensor, mode: str) -> torch.Tensor:
        """``volume`` [1, C, D, H, W] (float16 storage) sampled at voxel ``coords`` [N, 3] (z, y, x)
        -> [C, *patch] float32. Only the box the coordinates cover is converted to float32 (a
        whole liver box per sample cost more than the network step)."""
        shape = volume.shape[2:]
        lo = coords.min(0).values.floor().long() - 1
        hi = coords.max(0).values.ceil().long() + 2
        lo = [max(0, min(int(v), n)) for v, n in zip(lo, shape)]
        hi = [max(0, min(int(v), n)) for v, n in zip(hi, shape)]
        channels = volume.shape[1]
        if any(b - a < 1 for a, b in zip(lo, hi)):  # the patch lies wholly outside the volume
            return torch.zeros((channels, *self.patch), device=self.device)
        sub = volume[:, :, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].float()
        local = coords - torch.tensor(lo, device=self.device, dtype=torch.float32)
        size = torch.tensor([b - a for a, b in zip(lo, hi)], device=self.device, dtype=torch.float32)
        norm = 2 * local / (size - 1).clamp_min(1) - 1
        grid = norm[:, [2, 1, 0]].reshape(1, *self.patch, 3)
        return F.grid_sample(sub, grid, mode=mode, padding_mode="zeros", align_corners=True)[0]

    def _maybe_insert_tumors(self, item, hu, target):
        """Synthetic tumors (``tumor_synthesis`` config) in a patch whose case annotates liver and
        tumor, so the tumor channel's loss sees them; real tumors and veins are kept."""
        cfg = self.tumor_cfg
        if cfg is None or not (item["annotated"][0] > 0 and item["annotated"][2] > 0):
            return hu, target
        if self._rand(1).item() >= cfg.probability:
            return hu, target
        before = hu
        hu, target, count = insert_tumors(hu, target, item["spacing"], item["phase"], self.gen, cfg)
        self.inserted += count
        slab = int(round((item["slice_mm"] or 0.0) / item["spacing"][0])) if self.tumor_slice_profile else 0
        if count and slab >= 2:
            # a real lesion of a thick-slice CT is averaged over its slice thickness in z; a tumor
            # drawn on the fine grid gets the same partial volume, or it would be the only thing
            # in the patch with sharp z edges (a shortcut that misses the real small lesions)
            hu = before + slice_profile(hu - before, slab)
        return hu, target

    def _intensities(self, item, coords, use_synth: bool):
        """(HU patch, multi-hot target, extra input channels [E, *patch] or None) after the
        intensity augmentations. The extra channels (the vesselness input) follow the CT: scaled
        with the equilibrium-phase look (a Hessian response is linear in the vessels' contrast),
        thick-sliced with it; synthetic tumors keep the veins, so the channel stays true there."""
        target = self._resample(item["target"], coords, "bilinear") > 0.5
        extra = None if item["extra"] is None else self._resample(item["extra"], coords, "bilinear")
        if use_synth:
            from .synthesis import synthesize

            tissue = self._resample(item["tissue"], coords, "nearest")[0].long()
            hu = synthesize(tissue, self.gen)
        else:
            hu = self._resample(item["image"], coords, "bilinear")[0] + HU_STORE_MIN
            if self.compress_prob > 0 and self._rand(1).item() < self.compress_prob:
                lo, hi = self.compress_scale
                parenchyma = target[0] & ~target[1] & ~target[2]
                scale = lo + (hi - lo) * self._rand(1).item()
                hu = compress_enhancement(hu, parenchyma, scale)
                extra = None if extra is None else extra * scale
        hu, target = self._maybe_insert_tumors(item, hu, target)
        if self.thick_prob > 0 and self._rand(1).item() < self.thick_prob:
            lo, hi = self.thick_mm
            slab = int(round((lo + (hi - lo) * self._rand(1).item()) / item["spacing"][0]))
            hu = thick_slices(hu, slab)
            extra = None if extra is None else torch.stack([thick_slices(e, slab) for e in extra])
        return hu, target, extra

    def _after_ct(self, item, hu: torch.Tensor, cached: Optional[torch.Tensor]) -> List[torch.Tensor]:
        """The patch's input channels after the CT ([1, *patch] each, the stage's order): the
        cached ones (resampled with the patch) and those built on its augmented HU (the blob
        channel sees the synthetic tumors)."""
        out, k = [], 0
        for name in self.extras:
            if name in CACHED_INPUTS:
                out.append(cached[k:k + 1])
                k += 1
            elif name == "blob":
                out.append(blob_channel(hu, item["spacing"])[None])
            else:
                raise ValueError(f"input channel '{name}' is neither cached nor built on the patch")
        return out

    def sample(self, batch_size: int):
        """(x [B, 1 + E, *patch] float32: the windowed CT in [0, 1] then the extra input channels,
        target [B, 3, *patch] float32, weight [B, 3])."""
        xs, ts, ws = [], [], []
        for _ in range(batch_size):
            use_synth = self._rand(1).item() < self.synth_fraction
            pool = self.synth if use_synth else self.real
            item = pool[self._pick(len(pool))]
            coords = self._grid(item, self._centre(item))
            hu, target, extra = self._intensities(item, coords, use_synth)
            x = apply_window(hu, random_window(self.window, self.gen, self.device))
            if self.noise_std > 0 and self._rand(1).item() < 0.3:
                x = x + torch.randn(x.shape, generator=self.gen, device=self.device) * (self._rand(1).item() * self.noise_std)
            xs.append(torch.cat([x[None], *self._after_ct(item, hu, extra)]))
            ts.append(target.float())
            ws.append(item["annotated"])
        return torch.stack(xs), torch.stack(ts), torch.stack(ws).to(self.device)
