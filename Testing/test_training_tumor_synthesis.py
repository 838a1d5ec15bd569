"""Synthetic tumor insertion (Hu et al. 2023 recipe + phase-aware appearance): lesions inside the
liver, label and intensity consistent, size classes respected, phase appearance as configured,
veins kept, deterministic with a seed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from LiverLVTLib.training.tumor_synthesis import (
    SIZE_CLASSES,
    TumorSynthesisConfig,
    appearance,
    insert_tumors,
    within_voxels,
)

SPACING = (1.25, 1.25, 1.25)
PARENCHYMA_HU = 100.0


def liver_patch(n=80, with_vessel=True, seed=0):
    """A ball-shaped 'liver' of 100 HU (noise 8 HU) in fat, with one enhancing vein (190 HU)
    labelled vessel running through it; multi-hot target [3, n, n, n]."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n]
    liver = ((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2) < (0.42 * n) ** 2
    vessel = liver & (((y - n / 2) ** 2 + (x - n / 2 + 5) ** 2) < 9) if with_vessel else np.zeros_like(liver)
    hu = np.where(liver, PARENCHYMA_HU, -100.0) + rng.normal(0, 8, liver.shape)
    hu[vessel] = 190.0
    target = np.stack([liver, vessel, np.zeros_like(liver)])
    return torch.tensor(hu, dtype=torch.float32), torch.tensor(target)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def only(name, **kw):
    probs = {k: 0.0 for k in (*SIZE_CLASSES, "mix")}
    probs[name] = 1.0
    return TumorSynthesisConfig(probability=1.0, class_probs=probs, **kw)


def test_tumors_lie_in_the_liver_keep_the_vein_and_obey_the_hierarchy():
    hu, target = liver_patch()
    new_hu, new_t, count = insert_tumors(hu, target, SPACING, "portal-venous", gen(1),
                                         only("small", bulge_probability=0.0))
    tumor, liver, vessel = new_t[2], new_t[0], new_t[1]
    assert count >= 1 and tumor.sum() > 100
    assert not (tumor & ~target[0]).any(), "without bulging, tumor voxels stay inside the liver"
    assert not (tumor & target[1]).any(), "a labelled vein never becomes tumor"
    assert torch.equal(vessel, target[1]) and torch.equal(new_hu[target[1]], hu[target[1]]), \
        "the vein keeps its label and its HU"
    assert not (tumor & ~liver).any()  # liver ⊇ tumor
    # intensity agrees with the label: portal-venous tumors are hypo-attenuating
    assert new_hu[tumor].mean() < PARENCHYMA_HU - 10
    # outside the tumor (and its blurred edge) the image is unchanged
    far = ~torch.nn.functional.max_pool3d(tumor[None, None].float(), 9, 1, 4)[0, 0].bool()
    assert torch.equal(new_hu[far], hu[far])


@pytest.mark.parametrize("name", ["tiny", "medium", "large"])
def test_size_classes_are_respected(name):
    hu, target = liver_patch(n=96 if name == "large" else 80, with_vessel=False)
    radius = SIZE_CLASSES[name][0]
    cfg = only(name, max_per_patch=1, bulge_probability=0.0)
    volumes = []
    for seed in range(4):
        _, t, count = insert_tumors(hu, target, SPACING, "portal-venous", gen(seed), cfg)
        assert count == 1
        volumes.append(float(t[2].sum()) * np.prod(SPACING))
    nominal = 4 / 3 * np.pi * radius ** 3
    # radii U(0.75 r, 1.25 r), ±25 % elastic warp, clipped by the liver: volumes stay in class
    assert all(0.1 * nominal < v < 2.5 * nominal for v in volumes), (volumes, nominal)


def test_phase_appearance_as_configured():
    g = gen(3)
    arterial = [appearance("arterial", PARENCHYMA_HU, g)["mean"] for _ in range(200)]
    portal = [appearance("portal-venous", PARENCHYMA_HU, g)["mean"] for _ in range(200)]
    equilibrium = [appearance("equilibrium", PARENCHYMA_HU, g)["mean"] for _ in range(200)]
    assert all(m < PARENCHYMA_HU for m in portal) and all(m < PARENCHYMA_HU for m in equilibrium)
    hyper = np.mean([m > PARENCHYMA_HU for m in arterial])
    assert 0.55 < hyper < 0.85, "about 70 % of arterial-phase tumors are hyper-enhancing (APHE)"
    # equilibrium washout is subtler than portal-venous hypo-attenuation on average
    assert np.mean(equilibrium) > np.mean(portal)


def test_hyper_enhancing_share_is_configurable_by_phase():
    cfg = TumorSynthesisConfig.from_dict({"hyper_probability": {"portal-venous": 0.5}})
    assert cfg.hyper_probability["arterial"] == 0.7, "phases left out keep their default"
    g = gen(4)
    portal = [appearance("portal-venous", PARENCHYMA_HU, g, cfg.hyper_probability)["mean"]
              for _ in range(300)]
    assert 0.4 < np.mean([m > PARENCHYMA_HU for m in portal]) < 0.6
    never = TumorSynthesisConfig.from_dict({"hyper_probability": {"arterial": 0.0}})
    arterial = [appearance("arterial", PARENCHYMA_HU, g, never.hyper_probability)["mean"]
                for _ in range(100)]
    assert all(m < PARENCHYMA_HU for m in arterial)
    for bad in ({"delayed": 0.2}, {"arterial": 1.5}):
        with pytest.raises(ValueError, match="hyper_probability"):
            TumorSynthesisConfig.from_dict({"hyper_probability": bad})


def test_deterministic_with_a_seed_and_different_across_seeds():
    hu, target = liver_patch()
    cfg = TumorSynthesisConfig(probability=1.0)
    a = insert_tumors(hu, target, SPACING, "arterial", gen(7), cfg)
    b = insert_tumors(hu, target, SPACING, "arterial", gen(7), cfg)
    c = insert_tumors(hu, target, SPACING, "arterial", gen(8), cfg)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1][2], c[1][2])


def test_no_liver_no_tumor_and_real_tumors_avoided():
    hu, target = liver_patch()
    empty = torch.zeros_like(target)
    _, t, count = insert_tumors(hu, empty, SPACING, None, gen(0), TumorSynthesisConfig())
    assert count == 0 and not t.any()
    real = target.clone()
    n = hu.shape[0]
    z, y, x = torch.meshgrid(*[torch.arange(n)] * 3, indexing="ij")
    real[2] = (((z - n / 2) ** 2 + (y - n / 2 - 12) ** 2 + (x - n / 2) ** 2) < 64) & target[0]
    _, t, _ = insert_tumors(hu, real, SPACING, "portal-venous", gen(2), only("small"))
    assert torch.equal(t[2] & real[2], real[2]), "the real tumor keeps its label"


def test_sampler_inserts_tumors_only_where_tumors_are_annotated():
    from LiverLVTLib.training.augment import PatchSampler

    hu, target = liver_patch(n=48, with_vessel=False)
    labels = target[0].numpy().astype(np.uint8)
    code = np.round((hu.numpy() + 400) / 4).clip(0, 250).astype(np.uint8)
    case = {"id": "ball", "image": code, "labels": labels, "spacing": np.array(SPACING),
            "annotated": np.array([1, 0, 1], np.uint8), "phase": "portal-venous"}
    cfg = {"probability": 1.0, "class_probs": {"small": 1.0}}
    sampler = PatchSampler([case], [32, 32, 32], (-200, 300), seed=0, fg_prob=1.0,
                           rotate_deg=0, p_flip=0, p_scale=0, tumor_synthesis=cfg)
    _, t, _ = sampler.sample(4)
    assert sampler.inserted > 0 and t[:, 2].sum() > 0
    no_tumor = dict(case, annotated=np.array([1, 0, 0], np.uint8))
    sampler = PatchSampler([no_tumor], [32, 32, 32], (-200, 300), seed=0, fg_prob=1.0,
                           tumor_synthesis=cfg)
    _, t, _ = sampler.sample(4)
    assert sampler.inserted == 0 and t[:, 2].sum() == 0


def test_cysts_are_water_dense_homogeneous_lesions():
    hu, target = liver_patch(with_vessel=False)
    cfg = only("medium", max_per_patch=1, bulge_probability=0.0, cyst_probability=1.0)
    new_hu, t, count = insert_tumors(hu, target, SPACING, "arterial", gen(4), cfg)
    core = t[2] & ~torch.nn.functional.max_pool3d((~t[2])[None, None].float(), 5, 1, 2)[0, 0].bool()
    assert count == 1 and core.sum() > 100
    assert -5 < float(new_hu[core].mean()) < 25 and float(new_hu[core].std()) < 12
    cfg = only("medium", max_per_patch=1, bulge_probability=0.0, cyst_probability=0.0)
    _, t, _ = insert_tumors(hu, target, SPACING, "arterial", gen(4), cfg)
    assert t[2].sum() > 100


def test_exophytic_tumors_stand_out_of_the_liver_into_soft_tissue_only():
    hu, target = liver_patch(n=96, with_vessel=False)
    n = hu.shape[0]
    air = ~target[0] & (torch.arange(n)[:, None, None] < n // 3)  # lung above the dome
    hu[air] = -1000.0
    cfg = only("medium", max_per_patch=1, bulge_probability=0.0, cyst_probability=0.0,
               exophytic_probability=1.0)
    reach_mm = cfg.exophytic_fraction * SIZE_CLASSES["medium"][0] * 1.25  # radius up to 1.25 r
    near = torch.nn.functional.max_pool3d(target[0][None, None].float(),
                                          2 * int(reach_mm / SPACING[0]) + 3, 1,
                                          int(reach_mm / SPACING[0]) + 1)[0, 0].bool()
    out_shares = []
    for seed in range(8):
        new_hu, t, count = insert_tumors(hu, target, SPACING, "portal-venous", gen(seed), cfg)
        tumor = t[2]
        assert count == 1 and tumor.sum() > 100
        assert not (tumor & air).any(), "an exophytic tumor never fills air"
        assert not (tumor & ~near).any(), "it stands out of the liver by at most its reach"
        assert not (tumor & ~t[0]).any(), "the liver label grows with it (liver ⊇ tumor)"
        out_shares.append(float((tumor & ~target[0]).sum() / tumor.sum()))
        outside = tumor & ~target[0]
        if outside.sum() > 50:  # the part outside reads as tumor, not as the fat it replaced
            assert float(new_hu[outside].mean()) > float(hu[outside].mean()) + 40
    assert max(out_shares) > 0.15, out_shares
    # off by default: the same draw without the option stays inside the liver
    _, t, _ = insert_tumors(hu, target, SPACING, "portal-venous", gen(0),
                            only("medium", max_per_patch=1, bulge_probability=0.0, cyst_probability=0.0))
    assert not (t[2] & ~target[0]).any()


def test_exophytic_fill_max_hu_keeps_adjacent_organs_out():
    """With ``exophytic_fill_max_hu`` -20 the part outside the liver fills fat only: a 40 HU
    organ (stomach wall and content, adrenal gland, bowel) beside the liver stays untouched."""
    hu, target = liver_patch(n=96, with_vessel=False)
    n = hu.shape[0]
    organ = ~target[0] & (torch.arange(n)[None, None, :] > n // 2)  # the half beyond the liver
    hu[organ] = 40.0
    fat = ~target[0] & ~organ
    cfg = only("medium", max_per_patch=1, bulge_probability=0.0, cyst_probability=0.0,
               exophytic_probability=1.0, exophytic_fill_max_hu=-20.0)
    into_fat = 0
    for seed in range(8):
        _, t, count = insert_tumors(hu, target, SPACING, "portal-venous", gen(seed), cfg)
        assert count == 1
        assert not (t[2] & organ).any(), "an exophytic tumor never fills the adjacent organ"
        into_fat += int((t[2] & fat).sum())
    assert into_fat > 200, "it still stands out into the fat"
    soft = dataclasses.replace(cfg, exophytic_fill_max_hu=None)
    filled = sum(int((insert_tumors(hu, target, SPACING, "portal-venous", gen(s), soft)[1][2] & organ).sum())
                 for s in range(8))
    assert filled > 0, "without the limit the same draws fill soft tissue too"


def test_within_voxels_is_the_box_max_pool():
    mask = torch.rand(40, 36, 30, generator=gen(3)) > 0.97
    for radius in ([3, 3, 3], [1, 4, 2], [0.2, 2, 5]):
        k = [max(1, 2 * int(round(r)) + 1) for r in radius]
        box = torch.nn.functional.max_pool3d(mask[None, None].float(), k, 1, [x // 2 for x in k])[0, 0] > 0
        assert torch.equal(within_voxels(mask, radius), box)


def test_contrast_ranges_are_configurable_and_checked():
    """``contrast_hu`` sets the |offset| from the parenchyma per look (the real tumors of
    ../shared read 16-37 HU off it; the defaults draw 20-100)."""
    cfg = TumorSynthesisConfig.from_dict({"contrast_hu": {"hyper": [10, 20]},
                                          "hyper_probability": {"arterial": 1.0}})
    assert cfg.contrast_hu["hypo"] == (25.0, 100.0), "looks left out keep their default"
    g = gen(5)
    means = [appearance("arterial", PARENCHYMA_HU, g, cfg.hyper_probability, cfg.contrast_hu)["mean"]
             for _ in range(100)]
    assert all(PARENCHYMA_HU + 10 <= m <= PARENCHYMA_HU + 20 for m in means)
    washout = [appearance("equilibrium", PARENCHYMA_HU, g, None, {**cfg.contrast_hu, "washout": (5, 8)})["mean"]
               for _ in range(50)]
    assert all(PARENCHYMA_HU - 8 <= m <= PARENCHYMA_HU - 5 for m in washout)
    for bad in ({"delayed": [1, 2]}, {"hyper": [30, 10]}, {"hypo": [5]}, {"hypo": [-5, 10]}):
        with pytest.raises(ValueError, match="contrast_hu"):
            TumorSynthesisConfig.from_dict({"contrast_hu": bad})


def test_keep_grain_carries_the_scans_noise_into_the_lesion():
    """A painted lesion replaces the CT inside it by a smooth texture; with ``keep_grain`` the
    patch's own noise (here 8 HU) stays in it, at the same mean, and the vein keeps its HU."""
    from LiverLVTLib.training.tumor_synthesis import ct_grain

    hu, target = liver_patch()
    results = {}
    for keep in (False, True):
        cfg = only("medium", max_per_patch=1, bulge_probability=0.0, cyst_probability=0.0,
                   necrosis_probability=0.0, keep_grain=keep)
        new_hu, t, count = insert_tumors(hu, target, SPACING, "portal-venous", gen(6), cfg)
        core = t[2] & ~within_voxels(~t[2], [2, 2, 2])
        assert count == 1 and core.sum() > 500
        smooth = torch.nn.functional.avg_pool3d(new_hu[None, None], 3, 1, 1)[0, 0]
        results[keep] = (float((new_hu - smooth)[core].std()), float(new_hu[core].mean()))
        assert torch.equal(new_hu[target[1]], hu[target[1]])
    (fine_off, mean_off), (fine_on, mean_on) = results[False], results[True]
    assert fine_on > 2 * fine_off, results  # voxel-scale noise, absent from the blurred texture
    assert abs(mean_on - mean_off) < 2.0, results
    grain = ct_grain(hu, PARENCHYMA_HU)
    assert float(grain[target[1]].abs().max()) == 0.0, "a bright vein is no noise"
    inner = target[0] & ~within_voxels(~target[0] | target[1], [3, 3, 3])
    assert 3.0 < float(grain[inner].std()) < 8.0, "the liver's 8 HU noise, less its blur"
    edge = target[0] & within_voxels(~target[0], [1, 1, 1])
    assert float(grain[edge].abs().mean()) < 3.0, "the liver's edge against fat is no noise"
