"""The vesselness input channel (a stage's ``inputs``): a tube of known radius lights up and a
sphere does not, faint veins give a faint channel, the card checks the channels against the
network, a CT-only model widens onto the new channel without changing its output, and a model
with the channel trains and segments end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_segmentation_vesselness import SPACING, scene

from LiverLVTLib.core.errors import ModelError
from LiverLVTLib.segmentation.inputs import check_inputs, stage_inputs, vesselness_channel

NET = {"class": "UNet", "args": {"spatial_dims": 3, "in_channels": 2, "out_channels": 3,
                                 "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}}


def test_a_tube_of_known_radius_lights_up_and_a_sphere_does_not():
    hu, liver, tube, sphere = scene()  # 6 mm vein at +100 HU, 20 mm enhancing sphere at +50 HU
    channel = vesselness_channel(hu, liver, SPACING)
    assert channel.dtype == np.float32 and channel.min() >= 0.0 and channel.max() <= 1.0
    assert np.median(channel[tube]) > 0.8
    assert channel[sphere].mean() < 0.1, "a round enhancing tumor is no vessel"
    assert np.percentile(channel[liver & ~tube & ~sphere], 99) < 0.1, "parenchyma noise stays dark"
    assert np.all(channel[~liver] == 0.0), "nothing outside the (grown) liver"


def test_faint_veins_give_a_faint_channel():
    """A fixed scale, not a per-case percentile: a late phase's +30 HU vein reads fainter than a
    portal-venous +100 HU one, as the CT does."""
    hu, liver, tube, _ = scene()
    bright = np.median(vesselness_channel(hu, liver, SPACING)[tube])
    hu[tube] = 130.0
    faint = np.median(vesselness_channel(hu, liver, SPACING)[tube])
    assert 0.02 < faint < 0.5 * bright


def test_stage_inputs_stack_the_window_and_the_channel():
    hu, liver, tube, _ = scene(32)
    x = stage_inputs(hu, ["ct", "vesselness"], (-200, 300), liver, SPACING)
    assert x.shape == (2, *hu.shape)
    np.testing.assert_allclose(x[0], np.clip((hu + 200) / 500, 0, 1), atol=1e-6)
    assert stage_inputs(hu, ["ct"], (-200, 300)).shape == (1, *hu.shape)
    with pytest.raises(ValueError, match="liver"):
        stage_inputs(hu, ["ct", "vesselness"], (-200, 300))


@pytest.mark.parametrize("inputs, channels, roi, message", [
    (["ct", "vesselness"], 1, True, "in_channels=1"),
    (["ct", "hessian"], 2, True, "first must be 'ct'"),
    (["vesselness", "ct"], 2, True, "first must be 'ct'"),
    (["ct", "vesselness"], 2, False, "no 'roi' stage"),
    (["ct", "blob", "blob"], 3, True, "each once"),
])
def test_card_inputs_must_fit_the_network(inputs, channels, roi, message):
    network = {"class": "UNet", "args": dict(NET["args"], in_channels=channels)}
    with pytest.raises(ModelError, match=message):
        check_inputs(inputs, network, "fine", has_roi=roi)
    check_inputs(["ct"], dict(network, args=dict(network["args"], in_channels=1)), "fine", False)


def test_a_card_whose_inputs_do_not_fit_is_refused(tiny_model_dir, tmp_path):
    import shutil

    from LiverLVTLib.segmentation.model import load_card

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    card = json.loads((folder / "model.json").read_text())
    card["stages"][1]["inputs"] = ["ct", "vesselness"]  # the network still takes one channel
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="in_channels=1"):
        load_card(folder)
    card["stages"][1]["inputs"] = ["ct", "sato"]
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="malformed at"):  # the schema names the field
        load_card(folder)


def test_widened_warm_start_computes_what_the_ct_only_network_did():
    from monai.networks.nets import UNet

    from LiverLVTLib.training.train import widen_input_channels

    torch.manual_seed(0)
    old = UNet(**dict(NET["args"], in_channels=1, num_res_units=1)).eval()
    new = UNet(**dict(NET["args"], num_res_units=1)).eval()
    state, widened = widen_input_channels(old.state_dict(), new.state_dict())
    assert widened and all(state[k].shape == new.state_dict()[k].shape for k in state)
    new.load_state_dict(state)
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(new(torch.cat([x, torch.rand_like(x)], 1)), old(x))


def test_sampler_carries_the_channel_through_the_augmentations():
    """Patches carry the cached channel beside the CT; the equilibrium-phase look (contrast
    pulled towards the liver by a factor) scales the channel by the same factor."""
    from LiverLVTLib.training.augment import PatchSampler
    from LiverLVTLib.training.dataset import encode_hu

    hu, liver, tube, _ = scene(40)
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[tube] = 2
    case = {"id": "tube", "image": encode_hu(hu), "labels": labels, "annotated": np.ones(3, np.uint8),
            "spacing": np.array(SPACING, np.float32),
            "vesselness": vesselness_channel(hu, liver, SPACING)}
    kwargs = dict(patch_size=[24, 24, 24], window_hu=(-200, 300), seed=3, fg_prob=1.0,
                  synth_fraction=0.0, p_rotate=0.0, p_scale=0.0, p_flip=0.0, noise_std=0.0,
                  extras=["vesselness"])
    plain = PatchSampler([case], **kwargs).sample(4)
    assert plain[0].shape == (4, 2, 24, 24, 24)
    assert plain[0][:, 1].max() > 0.5 and plain[0][:, 1].min() >= 0.0
    # the first patch of the same seed lies at the same place (the look's draws come after)
    late = PatchSampler([case], compress_prob=1.0, compress_scale=(0.5, 0.5), **kwargs).sample(1)
    torch.testing.assert_close(late[0][0, 1], plain[0][0, 1] * 0.5, atol=2e-3, rtol=0)
    assert PatchSampler([case], **dict(kwargs, extras=[])).sample(1)[0].shape[1] == 1
    with pytest.raises(ValueError, match="lacks the input channel"):
        PatchSampler([{k: v for k, v in case.items() if k != "vesselness"}], **kwargs)


@pytest.mark.parametrize("inputs", [["ct", "vesselness"], ["ct", "blob", "vesselness"]])
def test_a_model_with_the_vesselness_input_trains_from_a_ct_only_one_and_segments(
        inputs, tiny_model_dir, tmp_path, capsys, phantom_manifest):
    """``liverlvt train`` warm-starts a CT + vesselness (+ blob) fine stage from the CT-only tiny
    model (the new channels widened in at zero weight), caches the vesselness channel (the blob
    one is built on each patch), writes ``inputs`` into the card, and ``segment`` builds the
    channels (vesselness from the coarse liver) at inference."""
    from LiverLVTLib.cli.main import main
    from LiverLVTLib.core import io
    from LiverLVTLib.segmentation.model import load_card
    from LiverLVTLib.segmentation.pipeline import segment_ct

    manifest, ph = phantom_manifest(["liver", "vessel", "tumor"])
    tiny = json.loads((tiny_model_dir / "model.json").read_text())
    stage = {"patch_size": [16, 16, 16], "window_hu": [-200, 300], "iterations": 2, "batch_size": 1,
             "lr": 1e-3, "synth_fraction": 0.0}
    coarse, fine = tiny["stages"]
    config = {"name": "tiny-vesselness", "seed": 1, "synth": False, "stages": [
        dict(stage, name="coarse", spacing_mm=coarse["spacing_mm"], network=coarse["network"]),
        dict(stage, name="fine", spacing_mm=fine["spacing_mm"], train_roi_margin_mm=8, roi=fine["roi"],
             inputs=inputs,
             network={"class": "UNet", "args": dict(fine["network"]["args"], in_channels=len(inputs))})],
        "inference": {"overlap": 0.25, "threshold": 0.5}, "postprocess": {"min_tumor_ml": 0.0}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "model"
    assert main(["train", "--manifest", str(manifest), "--out", str(out),
                 "--config", str(tmp_path / "config.json"), "--cache", str(tmp_path / "cache"),
                 "--device", "cpu", "--quiet", "--init-from", str(tiny_model_dir)]) == 0
    printed = capsys.readouterr().out
    assert "new input channels start at zero weight" in printed
    with np.load(tmp_path / "cache" / "fine" / "vesselness" / "ph.npz") as cached:
        assert cached["vesselness"].dtype == np.uint8 and cached["vesselness"].max() > 0
    card = load_card(out)
    assert card.stages[1].inputs == inputs and card.stages[0].inputs == ["ct"]
    assert not (tmp_path / "cache" / "fine" / "blob").exists()
    labels = segment_ct(ph.ct, model_dir=out, device="cpu", tta=False)
    assert io.same_grid(labels, ph.ct)
