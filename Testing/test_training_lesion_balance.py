"""Small liver lesions weigh as much as large ones in training: the blob term of the loss (Kofler
et al., IPMI 2023: one BCE + Dice per tumor) and per-lesion centring of tumor patches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from LiverLVTLib.core.labels import LIVER, TUMOR
from LiverLVTLib.training.augment import PatchSampler
from LiverLVTLib.training.losses import MaskedBCEDiceLoss


def _two_tumors():
    """A 12^3 patch: liver, a large tumor (4^3 voxels) found, a small one (2^3) missed."""
    target = torch.zeros(1, 3, 12, 12, 12)
    target[0, 0, 1:11, 1:11, 1:11] = 1
    target[0, 2, 2:6, 2:6, 2:6] = 1            # large tumor
    target[0, 2, 8:10, 8:10, 8:10] = 1         # small tumor, apart from the large one
    target[0, 0] = torch.maximum(target[0, 0], target[0, 2])
    logits = torch.full_like(target, -6.0)
    logits[0, 0][target[0, 0] > 0] = 4.0
    logits[0, 2, 2:6, 2:6, 2:6] = 4.0          # the large tumor is predicted, the small one not
    return logits, target, torch.tensor([[1.0, 0.0, 1.0]])


def _reference_blob(logits, target, smooth=1.0):
    """Per tumor, by explicit masks: the other tumors removed, BCE + Dice over the rest."""
    import cc3d

    comps = torch.from_numpy(cc3d.connected_components(target[0, 2].numpy() > 0.5, connectivity=26).astype("int64"))
    terms = []
    for k in range(1, int(comps.max()) + 1):
        keep = (comps == 0) | (comps == k)
        p = torch.sigmoid(logits[0, 2])[keep]
        t = (comps == k)[keep].float()
        dice = 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)
        bce = F.binary_cross_entropy_with_logits(logits[0, 2][keep], t)
        terms.append(dice + bce)
    return torch.stack(terms)


def test_blob_term_scores_each_tumor_on_its_own_and_matches_an_explicit_mask_computation():
    logits, target, weight = _two_tumors()
    per_tumor = _reference_blob(logits, target)
    assert per_tumor.shape == (2,)
    assert per_tumor[1] > 0.8 > 0.1 > per_tumor[0], "the missed small tumor's term is near 1, the found one's near 0"
    base = MaskedBCEDiceLoss()(logits, target, weight)
    # one more term per sample with a tumor: (sum of class terms + w * mean over tumors) / (2 + w)
    expected = (base * 2 + 0.5 * per_tumor.mean()) / (2 + 0.5)
    assert MaskedBCEDiceLoss(blob=0.5)(logits, target, weight).item() == pytest.approx(expected.item(), rel=1e-5)
    assert MaskedBCEDiceLoss(blob=0.0)(logits, target, weight).item() == pytest.approx(base.item())


def test_blob_term_gives_a_small_missed_tumor_the_weight_of_a_large_one():
    """Both tumors missed: the global Dice pulls every tumor voxel alike, so the large tumor takes
    most of the signal; the blob term gives each tumor its own Dice, so per voxel the small one is
    pulled harder (instance imbalance, Kofler et al. 2023)."""
    logits, target, weight = _two_tumors()
    logits[0, 2][target[0, 2] > 0] = -2.0      # neither tumor found
    small = torch.zeros_like(target[0, 2], dtype=torch.bool)
    small[8:10, 8:10, 8:10] = True
    large = (target[0, 2] > 0) & ~small

    def ratio(loss):
        x = logits.clone().requires_grad_(True)
        loss(x, target, weight).backward()
        g = -x.grad[0, 2]                      # gradient descent raises these logits
        assert torch.all(g[small] > 0) and torch.all(g[large] > 0)
        return (g[small].mean() / g[large].mean()).item()

    assert ratio(MaskedBCEDiceLoss()) == pytest.approx(1.0, abs=1e-4)
    assert ratio(MaskedBCEDiceLoss(blob=0.5)) > 1.5


def test_blob_term_is_silent_without_tumor_labels_or_tumors():
    logits, target, _ = _two_tumors()
    weight = torch.tensor([[1.0, 0.0, 0.0]])      # tumors not annotated (a CT-only phase)
    assert MaskedBCEDiceLoss(blob=1.0)(logits, target, weight).item() == pytest.approx(
        MaskedBCEDiceLoss()(logits, target, weight).item())
    no_tumor = target.clone()
    no_tumor[0, 2] = 0
    weight = torch.tensor([[1.0, 0.0, 1.0]])
    assert MaskedBCEDiceLoss(blob=1.0)(logits, no_tumor, weight).item() == pytest.approx(
        MaskedBCEDiceLoss()(logits, no_tumor, weight).item())


def _share_of_centres_in_small_lesion(per_lesion: float, draws: int = 400) -> float:
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[4:36, 4:36, 4:36] = LIVER
    labels[6:26, 6:26, 6:26] = TUMOR           # 8000 voxels
    labels[30:32, 30:32, 30:32] = TUMOR        # 8 voxels
    case = {"id": "two-lesions", "labels": labels, "image": np.zeros(labels.shape, np.int16),
            "annotated": np.array([0, 0, 1], np.uint8), "spacing": (1.0, 1.0, 1.0)}
    sampler = PatchSampler([case], [16, 16, 16], (-200, 300), seed=5, fg_prob=1.0,
                           tumor_per_lesion=per_lesion)
    item = sampler.real[0]
    centres = [sampler._centre(item) for _ in range(draws)]
    assert all(labels[tuple(int(v) for v in c)] == TUMOR for c in centres), "tumor-centred patches"
    return float(np.mean([min(c) >= 30 for c in centres]))


def test_per_lesion_sampling_centres_a_small_lesion_as_often_as_a_large_one():
    assert _share_of_centres_in_small_lesion(0.0) < 0.02           # voxel-uniform: 8 / 8008
    assert 0.4 < _share_of_centres_in_small_lesion(1.0) < 0.6      # one of two lesions
    assert 0.15 < _share_of_centres_in_small_lesion(0.5) < 0.35    # half the picks per lesion


def test_tumor_fn_weight_is_the_dice_at_one_half_and_pulls_missed_tumor_harder_above_it():
    """Tversky on the tumor channel (Salehi et al. 2017): beta 0.5 is the Dice; beta 0.7 makes a
    missed tumor voxel pull harder and a false tumor voxel softer than the Dice does; the liver
    and vessel terms are untouched."""
    logits, target, weight = _two_tumors()
    logits[0, 2, 0, 0, 0] = 4.0                # one false tumor voxel outside the liver
    base = MaskedBCEDiceLoss()(logits, target, weight)
    assert MaskedBCEDiceLoss(tumor_fn_weight=0.5)(logits, target, weight).item() == pytest.approx(base.item(), rel=1e-5)

    def grads(loss):
        x = logits.clone().requires_grad_(True)
        loss(x, target, weight).backward()
        return x.grad[0]

    dice, tversky = grads(MaskedBCEDiceLoss()), grads(MaskedBCEDiceLoss(tumor_fn_weight=0.7))
    missed, false = (0, 8, 8, 8), (0, 0, 0, 0)
    assert -tversky[2][missed[1:]] > -dice[2][missed[1:]] > 0, "a missed tumor voxel is pulled up harder"
    assert 0 < tversky[2][false[1:]] < dice[2][false[1:]], "a false tumor voxel is pushed down more softly"
    assert torch.allclose(tversky[:2], dice[:2])


def test_tumor_fn_weight_is_silent_where_tumors_are_not_annotated():
    logits, target, _ = _two_tumors()
    weight = torch.tensor([[1.0, 0.0, 0.0]])
    assert MaskedBCEDiceLoss(tumor_fn_weight=0.7)(logits, target, weight).item() == pytest.approx(
        MaskedBCEDiceLoss()(logits, target, weight).item())
