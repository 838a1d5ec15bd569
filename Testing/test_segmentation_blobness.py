"""The blob input channel (a stage's ``inputs``: ``"blob"``): a tumor-like ball scores by its
contrast's sign (bright +, dark -), a vein and flat parenchyma score zero, a fainter ball scores
less, the same on any grid size and spacing, numpy and torch alike; training patches carry it
after the synthetic tumors are drawn in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from LiverLVTLib.segmentation.blobness import blob_channel
from LiverLVTLib.segmentation.inputs import check_inputs, stage_inputs

SPACING = (1.25, 1.25, 1.25)


def _ball_scene(n=72, bright_hu=25.0, dark_hu=-30.0):
    """Parenchyma at 100 HU with a 12 mm bright ball, a 14 mm dark ball and a 4 mm vein (+80 HU)."""
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32) * SPACING[0]
    hu = np.full((n, n, n), 100.0, np.float32)
    bright = (z - 30) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 < 6 ** 2
    dark = (z - 60) ** 2 + (y - 60) ** 2 + (x - 30) ** 2 < 7 ** 2
    vein = ((z - 30) ** 2 + (y - 65) ** 2 < 2 ** 2) & (x > 10) & (x < 80)
    hu[bright] += bright_hu
    hu[dark] += dark_hu
    hu[vein] += 80.0
    return hu, bright, dark, vein


def test_a_ball_scores_by_its_contrast_and_a_vein_does_not():
    hu, bright, dark, vein = _ball_scene()
    channel = blob_channel(hu, SPACING)
    assert channel.dtype == np.float32 and channel.shape == hu.shape
    assert channel.min() >= -1.0 and channel.max() <= 1.0
    assert channel[bright].max() > 0.4, "a +25 HU ball 12 mm across is a bright blob"
    assert channel[dark].min() < -0.4, "a -30 HU ball is a dark blob"
    middle = vein & (np.abs(np.mgrid[:72, :72, :72][2] * SPACING[2] - 45) < 15)
    assert np.abs(channel[middle]).max() < 0.1 * channel[bright].max(), "a tube is no blob"
    assert np.abs(channel[:6, :6, :6]).max() == 0.0, "flat parenchyma scores nothing"


def test_a_fainter_ball_scores_less_and_torch_matches_numpy():
    hu, bright, _, _ = _ball_scene()
    faint_hu, _, _, _ = _ball_scene(bright_hu=10.0)
    strong = blob_channel(hu, SPACING)
    assert blob_channel(faint_hu, SPACING)[bright].max() < 0.6 * strong[bright].max()
    from_torch = blob_channel(torch.from_numpy(hu), SPACING)
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_allclose(from_torch.numpy(), strong, atol=1e-5)


@pytest.mark.parametrize("shape, spacing", [((37, 41, 43), (2.5, 0.8, 0.8)), ((5, 9, 11), (5.0, 1.5, 1.5))])
def test_any_grid_size_and_spacing_keeps_its_shape(shape, spacing):
    hu = np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)
    channel = blob_channel(hu, spacing)
    assert channel.shape == shape and np.isfinite(channel).all()


def test_the_stage_stacks_the_blob_channel_without_a_liver():
    hu, bright, _, _ = _ball_scene(40)
    x = stage_inputs(hu, ["ct", "blob"], (-200, 300), spacing_zyx=SPACING)
    assert x.shape == (2, *hu.shape) and x[1][bright].max() > 0.3
    network = {"class": "UNet", "args": {"in_channels": 2}}
    check_inputs(["ct", "blob"], network, "fine", has_roi=False)  # needs no liver stage


def test_training_patches_carry_the_blob_of_their_synthetic_tumors():
    """The channel is built on the augmented patch: a hyper-enhancing synthetic tumor drawn
    into a flat liver shows as a bright blob inside its label; cached and built channels keep the
    stage's order."""
    from LiverLVTLib.training.augment import PatchSampler
    from LiverLVTLib.training.dataset import encode_hu

    n = 72
    hu = np.full((n, n, n), 100.0, np.float32)
    labels = np.ones((n, n, n), np.uint8)  # all liver
    case = {"id": "flat", "image": encode_hu(hu), "labels": labels, "annotated": np.ones(3, np.uint8),
            "spacing": np.array(SPACING, np.float32), "vesselness": np.zeros_like(hu)}
    synthesis = {"probability": 1.0, "max_per_patch": 1, "class_probs": {"medium": 1.0},
                 "hyper_probability": {"arterial": 1.0}, "necrosis_probability": 0.0}
    sampler = PatchSampler([dict(case, phase="arterial")], patch_size=[40, 40, 40], window_hu=(-200, 300),
                           seed=1, fg_prob=0.0, synth_fraction=0.0, p_rotate=0.0, p_scale=0.0, p_flip=0.0,
                           noise_std=0.0, tumor_synthesis=synthesis, extras=["blob", "vesselness"])
    x, target, _ = sampler.sample(2)
    assert x.shape == (2, 3, 40, 40, 40)
    assert torch.all(x[:, 2] == 0), "the cached (zero) vesselness channel comes last, as asked"
    tumor = target[:, 2] > 0.5
    assert tumor.any(), "a synthetic tumor was drawn"
    assert x[:, 1][tumor].max() > 0.2, "its blob shows in the channel"
    pool = torch.nn.functional.max_pool3d  # 7.5 mm around the tumor, 15 mm in from the case's edge
    near = pool(tumor.float()[:, None], 13, 1, 6)[:, 0] > 0
    inner = -pool(-(target[:, 0] > 0.5).float()[:, None], 25, 1, 12)[:, 0] > 0
    assert inner.any() and x[:, 1][inner & ~near].abs().max() < 0.1, "flat liver scores nothing"
