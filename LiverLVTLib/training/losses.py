"""Masked multi-label loss of the LVT paper (Eq. 1): per-class sigmoid BCE + soft Dice, where a
class that a case does not annotate gets weight 0 (never treated as background).

``logits``  [B, C, ...] raw network outputs (C = 3: liver, vessel, tumor)
``target``  [B, C, ...] multi-hot targets (liver channel = liver ∪ vessel ∪ tumor)
``weight``  [B, C]      1 where the class is annotated for that sample, else 0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class MaskedBCEDiceLoss(torch.nn.Module):
    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0,
                 class_weights=(1.0, 1.0, 1.0), smooth: float = 1.0):
        super().__init__()
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
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        bce = bce.reshape(b, c, -1).mean(-1)                      # [B, C]
        dice = self.dice(logits, target).reshape(b, c)            # [B, C]
        # masked mean: a zero weight removes the class of that sample from loss AND gradient
        bce = torch.where(weight > 0, bce, torch.zeros_like(bce))
        dice = torch.where(weight > 0, dice, torch.zeros_like(dice))
        denom = weight.sum().clamp_min(1.0)
        return (self.bce_weight * (weight * bce).sum() + self.dice_weight * (weight * dice).sum()) / denom


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
