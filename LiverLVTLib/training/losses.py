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

``blob`` adds the blob loss of Kofler et al. (IPMI 2023, "blob loss: instance imbalance aware loss
functions for semantic segmentation") on the tumor channel: each liver tumor of a patch (a 26-
connected component of its label) gets its own BCE + Dice, computed over that tumor and the
patch's tumor-free voxels (the other tumors masked out), and the sample's term is the mean over
its tumors. A 1 mL lesion then weighs as much as an 80 mL one, where the global Dice lets the large
tumor dominate; false tumor anywhere in the patch still counts in every lesion's term. The paper
weighs global : blob as 2 : 1 (``blob`` 0.5 here).

``tumor_fn_weight`` (beta) turns the tumor channel's soft Dice into a Tversky loss (Salehi et al.,
MLMI 2017, "Tversky loss function for image segmentation using 3D fully convolutional deep
networks"; MONAI ``TverskyLoss``): false negatives weigh beta, false positives 1 - beta, so beta >
0.5 trades tumor precision for sensitivity (the paper's best: beta 0.7 on small MS lesions). None
keeps the Dice (beta 0.5 is the same loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class MaskedBCEDiceLoss(torch.nn.Module):
    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0,
                 class_weights=(1.0, 1.0, 1.0), smooth: float = 1.0, exclusion: float = 0.0,
                 blob: float = 0.0, tumor_fn_weight=None):
        super().__init__()
        self.exclusion = float(exclusion)
        self.blob = float(blob)
        self.smooth = float(smooth)
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, reduction="none", smooth_nr=smooth, smooth_dr=smooth)
        self.tversky = None
        if tumor_fn_weight is not None:
            from monai.losses import TverskyLoss

            beta = float(tumor_fn_weight)
            # MONAI's Tversky reads TP / (TP + a FP + b FN): half the Dice's smoothing makes it
            # the same loss at a = b = 0.5
            self.tversky = TverskyLoss(sigmoid=True, reduction="none", alpha=1.0 - beta, beta=beta,
                                       smooth_nr=smooth / 2, smooth_dr=smooth / 2)
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
        if self.tversky is not None:  # liver tumor channel: false negatives weigh beta
            tumor = self.tversky(logits[:, 2:3], target[:, 2:3]).reshape(b, 1)
            dice = torch.cat([dice[:, :2], tumor], dim=1)
        # masked mean: a zero weight removes the class of that sample from loss AND gradient
        bce = torch.where(weight > 0, bce, torch.zeros_like(bce))
        dice = torch.where(weight > 0, dice, torch.zeros_like(dice))
        total = self.bce_weight * (weight * bce).sum() + self.dice_weight * (weight * dice).sum()
        denom = weight.sum()
        if self.exclusion > 0:
            extra, terms = self._exclusion(voxel_bce, target.reshape(b, c, -1), weight)
            total, denom = total + self.exclusion * extra, denom + self.exclusion * terms
        if self.blob > 0:
            extra, terms = self._blobs(logits, target, voxel_bce, weight)
            total, denom = total + self.blob * extra, denom + self.blob * terms
        return total / denom.clamp_min(1.0)

    def _blobs(self, logits: torch.Tensor, target: torch.Tensor, voxel_bce: torch.Tensor,
               weight: torch.Tensor):
        """(sum over samples of the mean per-tumor BCE + Dice, the number of samples with a
        labelled tumor) on channel 2; per tumor k with voxels T_k and tumor-free voxels F:
        Dice 1 - (2 sum_Tk p + s) / (sum_F p + sum_Tk p + |T_k| + s), BCE mean over F and T_k."""
        import cc3d

        b = logits.shape[0]
        total, count = logits.new_zeros(()), 0
        for i in range(b):
            if weight[i, 2] <= 0:
                continue
            mask = (target[i, 2] > 0.5).cpu().numpy()
            comps = cc3d.connected_components(mask, connectivity=26)
            n = int(comps.max())
            if n == 0:
                continue
            ids = torch.from_numpy(comps.reshape(-1).astype("int64")).to(logits.device)
            prob = torch.sigmoid(logits[i, 2].reshape(-1))
            sums = logits.new_zeros(n + 1).scatter_add(0, ids, prob)          # [0]: tumor-free
            bces = logits.new_zeros(n + 1).scatter_add(0, ids, voxel_bce[i, 2])
            sizes = torch.bincount(ids, minlength=n + 1).to(logits.dtype)
            dice = 1 - (2 * sums[1:] + self.smooth) / (sums[0] + sums[1:] + sizes[1:] + self.smooth)
            bce = (bces[0] + bces[1:]) / (sizes[0] + sizes[1:])
            total = total + weight[i, 2] * (self.bce_weight * bce + self.dice_weight * dice).mean()
            count += 1
        return total, count

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
