"""Engine plumbing with a tiny random-weight model (no result is claimed from it): output grid,
cascade, cancel, weight integrity, CLI exit codes and messages."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from test_core_io import ct_like

from LiverLVTLib.cli.main import main
from LiverLVTLib.core import io
from LiverLVTLib.core.errors import Cancelled, ModelError
from LiverLVTLib.core.progress import CancelToken
from LiverLVTLib.segmentation.model import load_card
from LiverLVTLib.segmentation.pipeline import segment_ct


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "LAI"])
def test_labels_lie_on_the_input_grid(tiny_model_dir, orientation):
    ct = ct_like(orientation, spacing=(1.7, 2.1, 4.0), size=(70, 60, 30))
    labels = segment_ct(ct, model_dir=tiny_model_dir, device="cpu", tta=True)
    assert labels.GetPixelID() == sitk.sitkUInt8
    assert io.same_grid(labels, ct)
    assert set(np.unique(sitk.GetArrayViewFromImage(labels))) <= {0, 1, 2, 3}


def test_cancel_stops_within_one_window(tiny_model_dir):
    ct = ct_like(spacing=(1.5, 1.5, 3.0), size=(120, 110, 60))
    token = CancelToken()
    calls = []

    def progress(stage, fraction):
        if stage.startswith("infer"):
            calls.append(fraction)
            token.cancel()  # cancel as soon as the first batch of windows finished

    with pytest.raises(Cancelled):
        segment_ct(ct, model_dir=tiny_model_dir, device="cpu", progress=progress, cancel=token)
    assert len(calls) == 1


def test_tampered_or_missing_weights_are_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "fine.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_card(folder).stages[1].load_network()
    weights.unlink()
    with pytest.raises(ModelError, match="missing"):
        load_card(folder).stages[1].load_network()
    with pytest.raises(ModelError, match="no model card"):
        load_card(tmp_path / "nowhere")


def write(image, path):
    sitk.WriteImage(image, str(path))
    return str(path)


def bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    mr = sitk.GetImageFromArray(rng.uniform(0, 900, (8, 30, 30)).astype(np.float32))
    nan = sitk.GetImageFromArray(np.full((8, 30, 30), np.nan, np.float32))
    wide = ct_like()
    wide.SetSpacing((0.8, 0.8, 12.0))
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    (tmp_path / "corrupt.nrrd").write_bytes(b"NRRD0004\ntype: short\nsizes: 9 9\n" + bytes(12))
    return {
        "2-D": write(sitk.Image([40, 40], sitk.sitkInt16), tmp_path / "flat.nii.gz"),
        "single slice": write(sitk.Image([40, 40, 1], sitk.sitkInt16), tmp_path / "one.nii.gz"),
        "8-bit": write(sitk.Image([40, 40, 6], sitk.sitkUInt8), tmp_path / "png_stack.nrrd"),
        "not Hounsfield": write(mr, tmp_path / "mr.nii.gz"),
        "NaN": write(nan, tmp_path / "nan.mha"),
        "spacing": write(wide, tmp_path / "wide.nii.gz"),
        "empty file": str(tmp_path / "empty.nii.gz"),
        "cannot be read": str(tmp_path / "corrupt.nrrd"),
        "does not exist": str(tmp_path / "missing.nii.gz"),
    }


def test_cli_bad_inputs_exit_2_with_one_clear_line(tmp_path, capsys):
    for message, path in bad_inputs(tmp_path).items():
        code = main(["segment", path, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (message, err)
        assert len(err) == 1 and "Fix:" in err[0] and message in err[0], (message, err)
        assert not (tmp_path / "out" / "labels.nii.gz").exists()


def test_cli_model_and_output_errors(tmp_path, tiny_model_dir, capsys):
    ct = write(ct_like(), tmp_path / "ct.nii.gz")
    (tmp_path / "file").write_text("x")
    assert main(["segment", ct, "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "cannot write" in capsys.readouterr().err
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "coarse.pt").write_bytes(b"tampered")
    assert main(["segment", ct, "--out", str(tmp_path / "o"), "--model", str(folder)]) == 2
    assert "sha256" in capsys.readouterr().err


def test_cli_writes_labels_and_keeps_nothing_half_written(tmp_path, tiny_model_dir):
    ct = write(ct_like("RAS", size=(40, 36, 16)), tmp_path / "ct.nrrd")
    out = tmp_path / "out"
    code = main(["segment", ct, "--out", str(out), "--model", str(tiny_model_dir), "--no-analysis",
                 "--device", "cpu", "--progress-lines"])
    assert code == 0
    labels = io.read_labels(out / "labels.nii.gz", io.read_ct(ct))
    assert labels.GetSize() == (40, 36, 16)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["labels.nii.gz"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no staging or lock left"


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "LiverLVTLib", "segment", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--device" in result.stdout and "--tta" in result.stdout


def test_gpu_out_of_memory_falls_back_to_smaller_batches_then_cpu(monkeypatch, caplog):
    """No GPU here: the fallback chain is checked with a network whose CUDA runs 'run out of
    memory' (the real torch error type), so the CPU retry is the one that answers."""
    import torch

    from LiverLVTLib.segmentation import inference
    from LiverLVTLib.segmentation.model import Stage

    attempts = []

    def fake_run(network, volume, patch, overlap, batch, device, *rest):
        attempts.append((device.type, batch))
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return np.zeros((3,) + volume.shape[1:], np.float32)  # volume: [channels, z, y, x]

    class Net:
        def to(self, device):
            return self

    monkeypatch.setattr(inference, "_run", fake_run)
    stage = Stage("fine", None, "", {}, [1.0] * 3, [-200, 300], [32] * 3)
    grid = sitk.Image([40, 40, 40], sitk.sitkFloat32)
    with caplog.at_level("WARNING", logger="liverlvt"):
        probs = inference.predict(stage, Net(), grid, torch.device("cuda"), sw_batch_size=4)
    assert attempts == [("cuda", 4), ("cuda", 1), ("cpu", 4)]
    assert probs.shape == (3, 40, 40, 40)
    assert "out of memory" in caplog.text and "CPU" in caplog.text


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    import torch

    from LiverLVTLib.core.device import select_device
    from LiverLVTLib.core.errors import InputError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        select_device("cuda")
    assert select_device("auto").type == "cpu"


def test_cpu_bf16_and_channels_last_give_float32_probabilities_close_to_fp32():
    """The model card's CPU options: bf16 autocast and channels-last-3d change the arithmetic,
    not the result's type or shape (probabilities float32, within bf16 rounding of fp32)."""
    import torch
    from monai.networks.nets import UNet

    from LiverLVTLib.segmentation import inference
    from LiverLVTLib.segmentation.model import Stage

    torch.manual_seed(0)
    net = UNet(3, 1, 3, channels=(4, 8), strides=(2,), num_res_units=1).eval()
    stage = Stage("fine", None, "", {}, [1.0] * 3, [-200, 300], [16] * 3)
    array = np.random.default_rng(0).uniform(-300, 400, (20, 24, 28)).astype(np.float32)
    grid = sitk.GetImageFromArray(array)
    cpu = torch.device("cpu")
    fp32 = inference.predict(stage, net, grid, cpu)
    for precision, channels_last in (("bf16", False), ("fp32", True), ("bf16", True)):
        probs = inference.predict(stage, net, grid, cpu, cpu_precision=precision,
                                  channels_last=channels_last)
        assert probs.dtype == np.float32 and probs.shape == fp32.shape == (3, 20, 24, 28)
        assert np.abs(probs - fp32).max() < (0.05 if precision == "bf16" else 1e-5)


def test_tumor_slivers_on_the_ct_grid_go_back_to_parenchyma():
    import numpy as np
    import SimpleITK as sitk

    from LiverLVTLib.segmentation.pipeline import _tumor_dust_on_ct_grid

    lab = np.ones((20, 20, 20), np.uint8)
    lab[2:8, 2:8, 2:8] = 3          # 216 voxels of 1 mm^3: 0.216 mL, kept
    lab[15, 15, 15] = 3             # a 0.001 mL sliver
    image = sitk.GetImageFromArray(lab)
    out = sitk.GetArrayFromImage(_tumor_dust_on_ct_grid(image, 0.1))
    assert (out[2:8, 2:8, 2:8] == 3).all()
    assert out[15, 15, 15] == 1
    assert (out == 3).sum() == 216


def test_segment_ct_is_probabilities_then_labels(tiny_model_dir):
    from LiverLVTLib.segmentation.pipeline import labels_from_probabilities, predict_probabilities

    ct = ct_like(spacing=(1.7, 2.1, 4.0), size=(70, 60, 30))
    whole = sitk.GetArrayFromImage(segment_ct(ct, model_dir=tiny_model_dir, device="cpu"))
    out = predict_probabilities(ct, model_dir=tiny_model_dir, device="cpu")
    assert out.probs.shape[0] == 3 and io.same_grid(out.ct, ct)  # liver, vessel, tumor
    halves = sitk.GetArrayFromImage(labels_from_probabilities(out))
    assert np.array_equal(whole, halves)


def test_rules_replace_the_cards_clean_up(tiny_model_dir):
    """A 1 mL tumor peaking at 0.8 inside a liver: kept by the card's rules, given back to the
    liver when the caller's rules ask for a 0.9 peak (how tools/tumor_peaks.py measures a rule)."""
    from LiverLVTLib.segmentation.pipeline import StageOutput, labels_from_probabilities

    probs = np.zeros((3, 40, 40, 40), np.float32)  # liver, vessel, tumor (sigmoid channels)
    probs[0, 5:35, 5:35, 5:35] = 1.0
    zz, yy, xx = np.mgrid[:40, :40, :40]
    ball = (zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 36  # radius 6 mm at 1 mm
    probs[2][ball] = 0.8
    grid = sitk.Image([40, 40, 40], sitk.sitkInt16)
    out = StageOutput(grid, load_card(tiny_model_dir), probs, grid)
    card_rules = sitk.GetArrayFromImage(labels_from_probabilities(out))
    assert (card_rules == 3).sum() == ball.sum()
    strict = dict(out.card.postprocess, tumor_min_peak_probability=0.9)
    strict_labels = sitk.GetArrayFromImage(labels_from_probabilities(out, rules=strict))
    assert not (strict_labels == 3).any() and (strict_labels[ball] == 1).all()


def test_no_liver_in_the_coarse_stage_labels_nothing(tiny_model_dir, tmp_path, caplog):
    """The fine stage reads the coarse liver's box and was trained on the liver's surroundings
    only: where the coarse stage finds no liver, nothing is labelled, even by a fine stage that
    would call everything liver (it is not run on the whole CT)."""
    import torch

    from LiverLVTLib.segmentation.model import write_card

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    for name, bias in (("coarse", -20.0), ("fine", 20.0)):
        state = torch.load(model / f"{name}.pt", weights_only=True)
        last = [k for k, v in state.items() if k.endswith("bias") and v.shape == (3,)][-1]
        state[last] = torch.full((3,), bias)
        torch.save(state, model / f"{name}.pt")
    write_card(model, json.loads((model / "model.json").read_text()))  # the new sha256
    ct = ct_like(spacing=(1.7, 2.1, 4.0), size=(70, 60, 30))
    with caplog.at_level("WARNING", logger="liverlvt"):
        labels = sitk.GetArrayFromImage(segment_ct(ct, model_dir=model, device="cpu"))
    assert not labels.any()
    assert "the coarse stage found no liver: nothing is labelled" in caplog.text


def test_fine_stage_answers_only_near_the_coarse_liver(tiny_model_dir, tmp_path):
    """roi.within_mm: the fine stage's probabilities beyond that distance of the coarse liver
    (its largest component) are 0 — a heart or stomach inside the liver's box stays unlabelled;
    within it, the fine stage's own answer stands (its surface detail, a bulging tumor)."""
    from LiverLVTLib.segmentation.pipeline import _previous_liver, _within_previous_liver

    coarse = sitk.Image(40, 40, 40, sitk.sitkFloat32)
    coarse.SetSpacing((3.0, 3.0, 3.0))
    z, y, x = np.mgrid[:40, :40, :40]
    previous = np.zeros((3, 40, 40, 40), np.float32)
    previous[0] = (((z - 20) ** 2 + (y - 20) ** 2 + (x - 12) ** 2) < 8 ** 2) * 0.9  # 24 mm liver
    previous[0][(z - 20) ** 2 + (y - 20) ** 2 + (x - 34) ** 2 < 3 ** 2] = 0.9       # an island
    fine = sitk.Image(96, 96, 96, sitk.sitkFloat32)
    fine.SetSpacing((1.25, 1.25, 1.25))
    probs = np.ones((3, 96, 96, 96), np.float32)
    roi = {"from": "coarse", "margin_mm": 20}
    liver = _previous_liver((previous, coarse), 0)
    assert _within_previous_liver(probs, fine, liver, coarse, roi) is probs  # unset: the box alone
    kept = _within_previous_liver(probs, fine, liver, coarse, dict(roi, within_mm=10))
    zz, yy, xx = np.mgrid[:96, :96, :96] * 1.25  # voxel centres (mm); the liver's centre (60, 60, 36)
    dist = np.sqrt((zz - 60) ** 2 + (yy - 60) ** 2 + (xx - 36) ** 2) - 24  # mm outside the liver
    # (the coarse voxels make its surface uncertain by about 3 mm)
    assert (kept[:, dist < 5] == 1).all(), "within 10 mm of the coarse liver the answer stands"
    assert (kept[:, dist > 14] == 0).all(), "beyond it (and around the island) nothing is left"
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    card = json.loads((model / "model.json").read_text())
    card["stages"][1]["roi"]["within_mm"] = 20
    (model / "model.json").write_text(json.dumps(card))
    assert load_card(model).stages[1].roi["within_mm"] == 20  # the card schema takes it
    labels = sitk.GetArrayFromImage(segment_ct(ct_like(spacing=(1.7, 2.1, 4.0), size=(70, 60, 30)),
                                               model_dir=model, device="cpu"))
    assert labels.shape == (30, 60, 70)
