"""Training code on the small phantom (CPU, one thread, a few steps): masked loss, target
hierarchy, random windowing, synthesis, loss decrease, seed reproducibility and resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from LiverLVTLib.training.augment import PatchSampler, apply_window, random_window
from LiverLVTLib.training.dataset import (
    HU_STORE_MAX,
    HU_STORE_MIN,
    TISSUE_CLASSES,
    decode_hu,
    encode_hu,
    multi_hot,
    prepare_arrays,
)
from LiverLVTLib.training.losses import MaskedBCEDiceLoss, deep_supervision_loss
from LiverLVTLib.training.train import build_network, train_stage

WINDOW = (-200.0, 300.0)
STAGE = {"name": "test", "patch_size": [32, 32, 32], "window_hu": list(WINDOW), "batch_size": 2,
         "lr": 0.01, "fg_prob": 0.7, "synth_fraction": 0.0,
         "network": {"class": "UNet", "args": {"spatial_dims": 3, "in_channels": 1,
                                              "out_channels": 3, "channels": [8, 16, 32],
                                              "strides": [2, 2], "num_res_units": 1}}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: keep these tests light
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantom_case():
    """The small phantom as a cached training case on a 4 mm grid (about 60 x 50 x 45)."""
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=0)
    case = prepare_arrays(ph.ct, ph.labels, [4.0, 4.0, 4.0])
    case["annotated"] = np.ones(3, np.uint8)
    case["id"] = "phantom"
    assert set(np.unique(case["labels"])) == {0, 1, 2, 3}
    return case


# ----------------------------------------------------------------------------- loss
def test_masked_loss_gives_no_gradient_to_unannotated_classes():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, 8, requires_grad=True)
    target = (torch.rand(2, 3, 8, 8, 8) > 0.5).float()
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # sample 0: vessels not annotated
    loss = MaskedBCEDiceLoss()(logits, target, weight)
    loss.backward()
    grad = logits.grad
    assert torch.all(grad[0, 1] == 0), "an unannotated class must not receive gradient"
    assert grad[0, 0].abs().sum() > 0 and grad[0, 2].abs().sum() > 0
    assert grad[1, 1].abs().sum() > 0  # the same channel of an annotated sample does
    # whatever the unannotated target holds, the loss is the same
    other = target.clone()
    other[0, 1] = 1 - other[0, 1]
    assert MaskedBCEDiceLoss()(logits, other, weight).item() == pytest.approx(loss.item(), rel=1e-6)
    # deep supervision heads [B, K, C, ...] keep the mask
    heads = torch.randn(2, 2, 3, 8, 8, 8, requires_grad=True)
    deep_supervision_loss(MaskedBCEDiceLoss(), heads, target, weight).backward()
    assert torch.all(heads.grad[0, :, 1] == 0) and heads.grad[1, :, 1].abs().sum() > 0


def test_unannotated_class_gets_no_gradient_through_the_network():
    """End to end: a batch with no vessel annotation leaves the vessel output row of the last
    layer without gradient, the liver row not."""
    torch.manual_seed(0)
    net = build_network(STAGE["network"])
    x = torch.rand(2, 1, 16, 16, 16)
    target = (torch.rand(2, 3, 16, 16, 16) > 0.5).float()
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    MaskedBCEDiceLoss()(net(x), target, weight).backward()
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))][-1]
    out_dim = 1 if isinstance(last, torch.nn.ConvTranspose3d) else 0  # weight layout
    rows = last.weight.grad.transpose(0, out_dim) if out_dim else last.weight.grad
    assert rows[1].abs().sum() == 0 and last.bias.grad[1] == 0
    assert rows[0].abs().sum() > 0


# ----------------------------------------------------------------------------- targets
def test_multi_hot_targets_follow_the_hierarchy():
    labels = np.array([[[0, 1, 2, 3]]], np.uint8)
    hot = multi_hot(labels)
    assert hot[:, 0, 0].T.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1]]


def test_sampled_targets_keep_the_hierarchy_and_masks(phantom_case):
    partial = dict(phantom_case, id="partial", annotated=np.array([1, 0, 1], np.uint8))
    sampler = PatchSampler([phantom_case, partial], [24, 24, 24], WINDOW, seed=3, fg_prob=1.0)
    for _ in range(3):
        x, target, weight = sampler.sample(2)
        assert x.shape == (2, 1, 24, 24, 24) and target.shape == (2, 3, 24, 24, 24)
        liver = target[:, 0].bool()
        assert not (target[:, 1].bool() & ~liver).any(), "vessel outside the liver target"
        assert not (target[:, 2].bool() & ~liver).any(), "tumor outside the liver target"
        assert set(map(tuple, weight.tolist())) <= {(1.0, 1.0, 1.0), (1.0, 0.0, 1.0)}
        assert liver.any()  # foreground-centred patches


# ----------------------------------------------------------------------------- intensities
def test_random_window_stays_in_plausible_hu():
    gen = torch.Generator().manual_seed(0)
    centre0, width0 = sum(WINDOW) / 2, WINDOW[1] - WINDOW[0]
    lows, highs = [], []
    for _ in range(500):
        low, high = random_window(WINDOW, gen)
        lows.append(low)
        highs.append(high)
        assert abs((low + high) / 2 - centre0) <= 50.0 + 1e-6
        assert 0.8 * width0 - 1e-6 <= high - low <= 1.25 * width0 + 1e-6
        # inside the cached HU range, below fat+water and above dense contrast/bone onset
        assert HU_STORE_MIN <= low <= -100 and 100 <= high <= HU_STORE_MAX
    assert max(lows) - min(lows) > 100  # it does vary
    x = apply_window(torch.tensor([-1000.0, low, (low + high) / 2, high, 3000.0]), (low, high))
    assert x.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_hu_storage_round_trip_and_patch_intensities(phantom_case):
    hu = np.array([-1000, -400, -123, 0, 57, 600, 2000], np.float32)
    back = decode_hu(encode_hu(hu))
    assert np.all(np.abs(back - np.clip(hu, HU_STORE_MIN, HU_STORE_MAX)) <= 2.0)
    # sampled patches: liver (about 60-110 HU in the phantom) lands mid-window, never at 0 or 1
    sampler = PatchSampler([phantom_case], [24, 24, 24], WINDOW, seed=1, fg_prob=1.0,
                           noise_std=0.0)
    for _ in range(3):
        x, target, _ = sampler.sample(2)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        parenchyma = target[:, 0].bool() & ~target[:, 1].bool() & ~target[:, 2].bool()
        for b in range(2):
            values = x[b, 0][parenchyma[b]]
            if values.numel() > 50:
                assert 0.35 < float(values.median()) < 0.85


def test_synthesis_from_tissue_classes_is_ct_like(phantom_case):
    from LiverLVTLib.training.synthesis import synthesize

    tissue = np.full(phantom_case["labels"].shape, TISSUE_CLASSES.index("body"), np.int64)
    tissue[phantom_case["labels"] == 1] = TISSUE_CLASSES.index("liver")
    tissue[phantom_case["labels"] == 2] = TISSUE_CLASSES.index("vein")
    tissue[phantom_case["labels"] == 3] = TISSUE_CLASSES.index("tumor")
    tissue[:, :3] = TISSUE_CLASSES.index("air")
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        hu = synthesize(torch.from_numpy(tissue), gen)
        assert torch.isfinite(hu).all()
        liver = float(hu[torch.from_numpy(tissue == 3)].median())
        tumor = float(hu[torch.from_numpy(tissue == 6)].median())
        assert 30 < liver < 170 and abs(tumor - liver) > 5
        assert float(hu[torch.from_numpy(tissue == 0)].median()) < -850


# ----------------------------------------------------------------------------- training
def _fixed_batch(case, seed=7):
    sampler = PatchSampler([case], STAGE["patch_size"], WINDOW, seed=seed, fg_prob=0.8)
    return sampler.sample(4)


def _loss_of(state_dict, batch):
    net = build_network(STAGE["network"])
    net.load_state_dict(state_dict)
    net.eval()
    with torch.no_grad():
        x, target, weight = batch
        return float(MaskedBCEDiceLoss()(net(x), target, weight))


def test_a_few_training_steps_lower_the_loss(phantom_case):
    batch = _fixed_batch(phantom_case)
    torch.manual_seed(0)  # train_stage seeds the same way: same initial network
    before = _loss_of(build_network(STAGE["network"]).state_dict(), batch)
    result = train_stage(STAGE, [phantom_case], torch.device("cpu"), seed=0, iterations=30,
                         progress=False, log=lambda *_: None)
    after = _loss_of(result["state_dict"], batch)
    assert result["iterations"] == 30 and result["complete"] and len(result["losses"]) == 30
    assert after < 0.9 * before, (before, after)
    assert np.mean(result["losses"][-5:]) < np.mean(result["losses"][:5])


def test_training_is_reproducible_and_resumes(phantom_case, tmp_path):
    cpu = torch.device("cpu")
    quiet = dict(progress=False, log=lambda *_: None)
    a = train_stage(STAGE, [phantom_case], cpu, seed=5, iterations=3, **quiet)
    b = train_stage(STAGE, [phantom_case], cpu, seed=5, iterations=3, **quiet)
    assert a["losses"] == b["losses"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    c = train_stage(STAGE, [phantom_case], cpu, seed=6, iterations=3, **quiet)
    assert c["losses"] != a["losses"]
    # 3 + 3 steps through a checkpoint == 6 steps in one go
    straight = train_stage(STAGE, [phantom_case], cpu, seed=5, iterations=6, **quiet)
    ckpt = tmp_path / "test.ckpt"
    first = train_stage(STAGE, [phantom_case], cpu, seed=5, iterations=3, checkpoint=ckpt, **quiet)
    assert ckpt.is_file() and first["losses"] == a["losses"]
    messages = []
    resumed = train_stage(STAGE, [phantom_case], cpu, seed=5, iterations=6, checkpoint=ckpt,
                          progress=False, log=messages.append)
    assert any("resumed" in m and "iteration 3" in m for m in messages)
    assert resumed["iterations"] == 6 and len(resumed["losses"]) == 6
    np.testing.assert_allclose(resumed["losses"], straight["losses"], rtol=1e-5)
    for key in straight["state_dict"]:
        torch.testing.assert_close(resumed["state_dict"][key], straight["state_dict"][key],
                                   rtol=1e-4, atol=1e-6)


def test_train_command_writes_a_usable_model_folder(tmp_path, capsys, phantom_manifest):
    """``liverlvt train`` end to end on a one-case manifest (2 tiny stages, 3 steps each): cache,
    checkpoints, model card with training records, and a folder ``segment`` can use."""
    import json

    from LiverLVTLib.cli.main import main
    from LiverLVTLib.core import io
    from LiverLVTLib.segmentation.model import load_card
    from LiverLVTLib.segmentation.pipeline import segment_ct

    manifest, ph = phantom_manifest(["liver", "tumor"])
    small = dict(STAGE, patch_size=[16, 16, 16], iterations=3, batch_size=1)
    config = {"name": "tiny-trained", "seed": 1, "synth": False, "stages": [
        dict(small, name="coarse", spacing_mm=[6.0, 6.0, 6.0]),
        dict(small, name="fine", spacing_mm=[4.0, 4.0, 4.0], train_roi_margin_mm=8,
             roi={"from": "coarse", "channel": "liver", "margin_mm": 8})],
        "inference": {"overlap": 0.25, "threshold": 0.5}, "postprocess": {"min_tumor_ml": 0.0}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "model"
    assert main(["train", "--manifest", str(manifest), "--out", str(out),
                 "--config", str(tmp_path / "config.json"), "--cache", str(tmp_path / "cache"),
                 "--device", "cpu", "--quiet"]) == 0
    assert "stage 'fine': 1 real + 0 synthetic cases" in capsys.readouterr().out
    with np.load(tmp_path / "cache" / "fine" / "ph.npz") as cached:
        assert cached["annotated"].tolist() == [1, 0, 1]  # vessels masked for this case
        assert cached["labels"].shape == cached["image"].shape
    card = load_card(out)
    assert [s.name for s in card.stages] == ["coarse", "fine"]
    for stage in card.stages:
        stage.load_network("cpu")
    records = card.card["training"]["stages"]
    assert records["coarse"]["cases"] == ["ph"] and records["fine"]["iterations"] == 3
    assert (out / "checkpoints" / "fine.ckpt").is_file()
    labels = segment_ct(ph.ct, model_dir=out, device="cpu", tta=False)
    assert io.same_grid(labels, ph.ct)


def test_hard_negatives_lie_around_the_liver_and_on_unlabelled_bright_veins():
    import numpy as np

    from LiverLVTLib.training.augment import HARD_SHELL_MM, hard_negative_voxels

    labels = np.zeros((40, 40, 40), np.uint8)
    labels[10:30, 10:30, 10:30] = 1
    hu = np.full(labels.shape, -100.0, np.float32)
    hu[labels == 1] = 100.0
    hu[18:22, 18:22, 10:30] = 200.0                      # an unlabelled enhancing vein
    spacing = (2.0, 2.0, 2.0)
    flat = hard_negative_voxels(labels, hu, spacing, np.array([1, 0, 1]))
    zyx = np.stack(np.unravel_index(flat, labels.shape), -1)
    outside = labels[tuple(zyx.T)] == 0
    assert outside.any() and (~outside).any()
    # outside voxels within the shell of the liver box, inside voxels on the bright vein only
    dist = np.maximum(np.maximum(10 - zyx, zyx - 29), 0).max(1) * 2.0
    assert (dist[outside] <= HARD_SHELL_MM + 2 * np.sqrt(3)).all()
    assert (hu[tuple(zyx[~outside].T)] == 200.0).all()
    # vessels annotated: the bright voxels are vessel-supervised already, only the shell is drawn
    flat_v = hard_negative_voxels(labels, hu, spacing, np.array([1, 1, 1]))
    assert (labels.ravel()[flat_v] == 0).all()
    assert hard_negative_voxels(labels, hu, spacing, np.array([0, 0, 1])).size == 0


def test_compress_enhancement_pulls_bright_tissue_towards_the_liver_only():
    import torch

    from LiverLVTLib.training.augment import compress_enhancement

    hu = torch.tensor([-100.0, 40.0, 100.0, 180.0, 300.0, 800.0]).repeat(50)
    liver = (hu == 100.0)
    out = compress_enhancement(hu, liver, 0.5)
    expect = torch.tensor([-100.0, 40.0, 100.0, 140.0, 200.0, 650.0]).repeat(50)
    assert torch.allclose(out, expect)


def test_thick_slices_average_along_z_only_and_keep_the_mean():
    from LiverLVTLib.training.augment import thick_slices

    hu = torch.full((24, 8, 8), 100.0)
    hu[12] = 400.0                        # a 1-voxel bright slab (a thin vessel seen on thin slices)
    hu[:, :, 4:] -= 150.0                 # an in-plane edge must stay sharp
    out = thick_slices(hu, 4)
    assert out.shape == hu.shape
    assert torch.equal(thick_slices(hu, 1), hu)
    # the slab spreads over neighbouring slices and loses its peak (partial-volume averaging) ...
    assert out[:, 0, 0].max() < 200.0 and (out[:, 0, 0] > 101.0).sum() >= 4
    # ... while every axial column keeps its mean and the in-plane edge stays where it was
    assert torch.allclose(out.mean(0), hu.mean(0), atol=2.0)
    assert torch.allclose(out[:, :, 3] - out[:, :, 4], torch.full((24, 8), 150.0))


def test_sampler_draws_thick_slice_patches_on_request(phantom_case):
    plain = PatchSampler([phantom_case], (16, 16, 16), (-200, 300), seed=3, synth_fraction=0.0,
                         noise_std=0.0)
    thick = PatchSampler([phantom_case], (16, 16, 16), (-200, 300), seed=3, synth_fraction=0.0,
                         noise_std=0.0, thick_prob=1.0, thick_mm=(8.0, 8.0))
    x0, t0, _ = plain.sample(1)           # one patch: the same draw of place and pose in both
    x1, t1, _ = thick.sample(1)
    assert torch.equal(t0, t1)            # the labels stay the thin-slice anatomy
    # thick slices: neighbouring z planes differ less than in the thin-slice patch
    assert (x1.diff(dim=2).abs().mean() < x0.diff(dim=2).abs().mean())


def test_flip_prob_keeps_or_mirrors_left_and_right(phantom_case):
    """``flip_prob`` 0 (recipe v8): every patch keeps the patient's left and right, so the
    network may learn that the liver lies on the right and the spleen on the left; 1: every
    patch is mirrored along x. Read from the stage config by the trainer."""
    from LiverLVTLib.training.train import _new_run

    kept = PatchSampler([phantom_case], (16, 16, 16), (-200, 300), p_flip=0.0, p_rotate=0.0, p_scale=0.0)
    mirrored = PatchSampler([phantom_case], (16, 16, 16), (-200, 300), p_flip=1.0, p_rotate=0.0, p_scale=0.0)
    centre = [20.0, 20.0, 20.0]
    x_kept = kept._grid(kept.real[0], centre)[:, 2].reshape(16, 16, 16)
    x_mirrored = mirrored._grid(mirrored.real[0], centre)[:, 2].reshape(16, 16, 16)
    assert (x_kept.diff(dim=2) > 0).all()       # x grows along the patch's x: no mirror
    assert (x_mirrored.diff(dim=2) < 0).all()   # mirrored
    run = _new_run(dict(STAGE, flip_prob=0.0), [phantom_case], torch.device("cpu"), 0, 0.0)
    assert run.sampler.p_flip == 0.0
    assert _new_run(STAGE, [phantom_case], torch.device("cpu"), 0, 0.0).sampler.p_flip == 0.5
    # tumor_per_lesion reaches the sampler, which then holds the phantom's tumors lesion by lesion
    lesions = _new_run(dict(STAGE, tumor_per_lesion=0.5), [phantom_case], torch.device("cpu"), 0, 0.0).sampler.real[0]["lesions"]
    assert len(lesions) >= 2 and sum(part.numel() for part in lesions) == run.sampler.real[0]["fg"][2].numel()
    assert run.sampler.real[0]["lesions"] == []


def test_exclusion_loss_teaches_an_unannotated_channel_only_where_other_labels_rule_it_out():
    """The exclusion term (Shi et al. 2021): a case without vessel labels still tells the vessel
    channel 0 outside the liver and on its labelled tumor, and nothing inside the rest of the
    liver, where its veins run unlabelled."""
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 6, 6, 6, requires_grad=True)
    target = torch.zeros(1, 3, 6, 6, 6)
    target[0, 0, 1:5, 1:5, 1:5] = 1          # liver (channel 0 = liver ∪ vessel ∪ tumor)
    target[0, 2, 2:4, 2:4, 2:4] = 1          # tumor inside it
    weight = torch.tensor([[1.0, 0.0, 1.0]])  # vessels not annotated
    MaskedBCEDiceLoss(exclusion=1.0)(logits, target, weight).backward()
    grad = logits.grad[0, 1]
    outside = target[0, 0] == 0
    tumor = target[0, 2] == 1
    parenchyma = ~outside & ~tumor
    assert torch.all(grad[outside] > 0) and torch.all(grad[tumor] > 0), "pushed towards 0 there"
    assert torch.all(grad[parenchyma] == 0), "the unlabelled liver may hold veins: no signal"
    base = MaskedBCEDiceLoss()(logits.detach(), target, weight)
    assert MaskedBCEDiceLoss(exclusion=0.0)(logits.detach(), target, weight).item() == pytest.approx(base.item())
    # a sample whose liver is not annotated says nothing about its other channels
    logits.grad = None
    MaskedBCEDiceLoss(exclusion=1.0)(logits, target, torch.tensor([[0.0, 0.0, 1.0]])).backward()
    assert torch.all(logits.grad[0, 1] == 0) and torch.all(logits.grad[0, 0] == 0)
    # a CT-only phase with its partner's liver only: no tumor outside that liver
    logits.grad = None
    MaskedBCEDiceLoss(exclusion=1.0)(logits, target, torch.tensor([[1.0, 0.0, 0.0]])).backward()
    assert torch.all(logits.grad[0, 2][outside] > 0) and torch.all(logits.grad[0, 2][~outside] == 0)
