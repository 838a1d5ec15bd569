"""Masked multi-label loss of the LVT paper (Eq. 1): per-class sigmoid BCE + soft Dice, where a
class that a case does not annotate gets weight 0 (never treated as background).

``logits``  [B, C, ...] raw network outputs (C = 3: liver, vessel, tumor)
``target``  [B, C, ...] multi-hot targets (liver channel = liver ∪ vessel ∪ tumor)
``weight``  [B, C]      1 where the class is annotated for that sample, else 0

``exclusion`` adds what the annotated classes say about an unannotated one (the exclusion loss of
Shi et al., Med Image Anal 70:101979, 2021, "Marginal loss and exclusion loss for partially supervised
multi-organ segmentation"): hepatic vessels and liver tumors lie inside the liver and never on
each other's voxels, so in a sample whose liver is annotated an unannotated vessel or tumor
channel is known to be 0 outside the liver and on the voxels of the other class where that class
is annotated (an arterial-phase HCC case without vessel labels: its tumors are no vessel; a CT-only
phase with its partner's liver only: no tumor outside that liver). Those voxels get the channel's
BCE with target 0 (mean over them, one more term of weight ``exclusion``); no Dice, as no positive
voxel of the channel is known.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class MaskedBCEDiceLoss(torch.nn.Module):
    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0,
                 class_weights=(1.0, 1.0, 1.0), smooth: float = 1.0, exclusion: float = 0.0):
        super().__init__()
        self.exclusion = float(exclusion)
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, reduction="none", smooth_nr=smooth, smooth_dr=smooth)
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
        logits = logits.float()
        target = target.float()
        weight = weight.float().to(logits.device) * self.class_weights.to(logits.device)
        b, c = logits.shape[:2]
        voxel_bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").reshape(b, c, -1)
        bce = voxel_bce.mean(-1)                                  # [B, C]
        dice = self.dice(logits, target).reshape(b, c)            # [B, C]
        # masked mean: a zero weight removes the class of that sample from loss AND gradient
        bce = torch.where(weight > 0, bce, torch.zeros_like(bce))
        dice = torch.where(weight > 0, dice, torch.zeros_like(dice))
        total = self.bce_weight * (weight * bce).sum() + self.dice_weight * (weight * dice).sum()
        denom = weight.sum()
        if self.exclusion > 0:
            extra, terms = self._exclusion(voxel_bce, target.reshape(b, c, -1), weight)
            total, denom = total + self.exclusion * extra, denom + self.exclusion * terms
        return total / denom.clamp_min(1.0)

    @staticmethod
    def _exclusion(voxel_bce: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
        """(sum of the exclusion terms, their number) for channels 1 (vessel) and 2 (tumor):
        mean BCE against 0 over the voxels the liver and the other child class rule out."""
        positive = target > 0.5                                          # [B, C, N]
        outside = ~positive[:, :1]                                       # not liver ∪ children
        other = positive[:, [2, 1]] & (weight[:, [2, 1], None] > 0)     # the other child, labelled
        known = (outside | other) & ~positive[:, 1:]                     # [B, 2, N]
        use = (weight[:, :1] > 0) & (weight[:, 1:] <= 0)                 # [B, 2]
        count = known.sum(-1)
        use = use & (count > 0)
        means = (voxel_bce[:, 1:] * known).sum(-1) / count.clamp_min(1)
        return (means * use).sum(), use.sum()


def deep_supervision_loss(loss_fn, outputs, target, weight):
    """MONAI DynUNet-style deep supervision: outputs [B, 1+K, C, ...] or a list; heads weighted
    1, 1/2, 1/4, ... and normalised."""
    if isinstance(outputs, torch.Tensor) and outputs.dim() == target.dim() + 1:
        heads = list(torch.unbind(outputs, dim=1))
    elif isinstance(outputs, (list, tuple)):
        heads = list(outputs)
    else:
        return loss_fn(outputs, target, weight)
    weights = [0.5 ** i for i in range(len(heads))]
    total = sum(w * loss_fn(h, target, weight) for w, h in zip(weights, heads))
    return total / sum(weights)
