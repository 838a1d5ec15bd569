"""Reliability classes 4 and 5 at the command line and the Python API: malformed model cards,
bad demo seeds, arrays or None given to the API, degenerate but readable CTs (no liver in view,
a CT that does not cover the whole liver), malformed manifests, and messages without numpy reprs
or ITK internals. Each builds its fault and checks the exit code, the one-line message and that
no output folder was made."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.cli.main import build_parser, main
from LiverLVTLib.core.errors import InputError


@pytest.fixture(scope="module")
def phantom():
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    return make_small_phantom(seed=0)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("liverlvt: error: ") and "Fix:" in err[0], err
    assert "Traceback" not in err[0] and "np." not in err[0]
    return err[0]


def nothing_made(tmp_path, name="out") -> bool:
    return not any(p.name == name or p.name.startswith(f".{name}.") for p in tmp_path.iterdir())


# ----------------------------------------------------------------------------- model cards
def _edit(key, value, stage=True):
    def edit(card):
        target = card["stages"][0] if stage else card
        if isinstance(key, tuple):
            target[key[0]][key[1]][key[2]] = value
        else:
            target[key] = value
        return card
    return edit


CARDS = {
    "unknown network argument": (_edit(("network", "args", "colour"), 3), "network.args"),
    "spacing zero": (_edit("spacing_mm", [0, 0, 0]), "spacing_mm"),
    "spacing a string": (_edit("spacing_mm", "3 mm"), "spacing_mm"),
    "negative patch size": (_edit("patch_size", [-32, 32, 32]), "patch_size"),
    "card a JSON list": (lambda card: [card], "(top level): a list, not an object"),
    "inference not an object": (_edit("inference", [0.5], stage=False), "inference"),
    "unknown network class": (_edit("network", {"class": "NoSuchNet", "args": {}}), "NoSuchNet"),
}


@pytest.mark.parametrize("fault", list(CARDS))
def test_malformed_model_card_exit_2_naming_the_field(fault, tmp_path, tiny_model_dir, phantom, capsys):
    edit, field = CARDS[fault]
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    card = edit(json.loads((folder / "model.json").read_text()))
    (folder / "model.json").write_text(json.dumps(card))
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(phantom.ct, str(ct))
    assert main(["segment", str(ct), "--out", str(tmp_path / "out"), "--model", str(folder),
                 "--device", "cpu"]) == 2
    line = one_error_line(capsys)
    assert field in line, line
    assert nothing_made(tmp_path)


def test_network_arguments_refused_where_the_network_is_built():
    from LiverLVTLib.core.errors import ModelError
    from LiverLVTLib.segmentation.model import build_network

    spec = {"class": "UNet", "args": {"spatial_dims": 3, "in_channels": 1, "out_channels": 3,
                                      "channels": [4], "strides": []}}
    with pytest.raises(ModelError, match="cannot be built from network.args"):
        build_network(spec, "coarse")  # binds, but MONAI's own check refuses it
    with pytest.raises(ModelError, match="missing a required argument: 'in_channels'"):
        build_network({"class": "UNet", "args": {"spatial_dims": 3}}, "coarse")


# ----------------------------------------------------------------------------- demo seed
@pytest.mark.parametrize("seed", ["-5", str(2 ** 32)])
def test_demo_bad_seed_is_refused_first(seed, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "out"), "--seed", seed]) == 2
    line = one_error_line(capsys)
    assert "seed" in line and seed in line
    assert nothing_made(tmp_path)


# ----------------------------------------------------------------------------- Python API
@pytest.mark.parametrize("bad", [np.zeros((8, 8, 8), np.float32), None, 3.5], ids=["array", "None", "float"])
def test_api_wrong_types_are_a_type_error_naming_what_is_expected(bad, phantom):
    from LiverLVTLib.analysis.measure import analyze_case
    from LiverLVTLib.segmentation.pipeline import segment_ct

    with pytest.raises(TypeError, match="CT must be a SimpleITK.Image or a file path"):
        segment_ct(bad, device="cpu")
    with pytest.raises(TypeError, match="CT must be a SimpleITK.Image or a file path"):
        analyze_case(bad, phantom.labels)
    with pytest.raises(TypeError, match="label map must be a SimpleITK.Image"):
        analyze_case(phantom.ct, bad)


def test_api_array_message_says_how_to_make_an_image(phantom):
    from LiverLVTLib.analysis.measure import analyze_case

    with pytest.raises(TypeError) as info:
        analyze_case(phantom.ct, sitk.GetArrayFromImage(phantom.labels))
    assert "numpy.ndarray" in str(info.value) and "GetImageFromArray" in str(info.value)


# ----------------------------------------------------------------------------- degenerate input
def _pelvis():
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    return make_small_phantom(seed=0, fov_mm=(240.0, 200.0, 90.0), center_mm=(0.0, 0.0, -160.0)).ct


DEGENERATE = {
    "two slices": lambda ph: ph.ct[:, :, 28:30],
    "8x8x8": lambda ph: ph.ct[0:8, 30:38, 28:36],
    "pelvic crop": lambda ph: _pelvis(),
}


@pytest.mark.parametrize("kind", list(DEGENERATE))
def test_no_liver_in_the_field_of_view(kind, phantom, tmp_path, capsys):
    """The shipped model on CTs without a liver in view: exit 2, "no liver was found in the
    field of view" (nothing measured or staged), no output folder."""
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(DEGENERATE[kind](phantom), str(ct))
    assert main(["segment", str(ct), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    line = one_error_line(capsys)
    assert "no liver was found in the field of view" in line and "mm" in line
    assert nothing_made(tmp_path)


def test_liver_touching_the_first_slice_is_a_warning(phantom, tmp_path, capsys, caplog):
    ct, labels = phantom.ct[:, :, 20:], phantom.labels[:, :, 20:]
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    with caplog.at_level("WARNING", logger="liverlvt"):
        assert main(["analyze", str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz"),
                     "--out", str(tmp_path / "out"), "--no-models", "--no-report"]) == 0
    assert any("does not cover the whole liver" in r.getMessage() for r in caplog.records)
    notes = json.loads((tmp_path / "out" / "measurements.json").read_text())["notes"]
    assert any(n.startswith("Warning: the liver reaches the first slice") for n in notes)
    whole = tmp_path / "whole"
    assert main(["analyze", str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz"),
                 "--out", str(whole), "--no-models", "--no-report"]) == 0


def test_whole_liver_in_view_has_no_coverage_warning(phantom):
    from LiverLVTLib.analysis.measure import analyze_case

    assert not [n for n in analyze_case(phantom.ct, phantom.labels)["notes"] if n.startswith("Warning")]


# ----------------------------------------------------------------------------- manifests
@pytest.mark.parametrize("change, words", [
    ({"annotated": "liver"}, "'annotated' must be a list"),
    ({"annotated": ["liver", "spleen"]}, "'annotated' must be a list"),
    ({"pair_of": "a"}, "names the case itself"),
    ({"pair_of": "zzz"}, "names no case"),
])
def test_malformed_manifest_entries_are_refused(change, words, tmp_path):
    from LiverLVTLib.core.manifest import load_manifest

    cases = [{"id": "a", "ct": "a.nii.gz", "labels": "a-l.nii.gz", "annotated": ["liver"]},
             {"id": "b", "ct": "b.nii.gz"}]
    cases[0].update(change)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"cases": cases}))
    with pytest.raises(InputError, match=words) as info:
        load_manifest(path)
    assert "case 'a'" in str(info.value)


def test_malformed_manifest_at_the_command_line(tmp_path, capsys):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"cases": [{"id": "a", "ct": "a.nii.gz", "annotated": "liver"}]}))
    assert main(["evaluate", "--manifest", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "'annotated' must be a list" in one_error_line(capsys)
    assert nothing_made(tmp_path)


# ----------------------------------------------------------------------------- messages
def test_messages_hold_no_numpy_reprs_or_itk_internals(phantom, tmp_path, capsys):
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(phantom.ct, str(ct))
    labels = tmp_path / "labels.nii.gz"
    sitk.WriteImage(phantom.labels, str(labels))
    corrupt = tmp_path / "corrupt.nrrd"
    corrupt.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n\n12")
    runs = [["analyze", str(ct), str(corrupt)],
            ["analyze", str(ct), str(labels), "--major-vessel-mm", "-1"],
            ["analyze", str(ct), str(labels), "--major-vessel-mm", "nan"],
            ["segment", str(corrupt)]]
    for argv in runs:
        assert main(argv + ["--out", str(tmp_path / "out")]) == 2, argv
        line = one_error_line(capsys)
        for internal in ("np.float", "np.int", "array(", ".cxx", "itk::", "/ITK/", "sitk"):
            assert internal not in line, (argv, line)
    assert nothing_made(tmp_path)


def test_device_has_help_text():
    sub = build_parser()._subparsers._group_actions[0].choices
    for command in ("segment", "demo", "evaluate"):
        helps = {a.dest: a.help for a in sub[command]._actions}
        assert helps["device"] and "GPU" in helps["device"] and "CPU" in helps["device"]
