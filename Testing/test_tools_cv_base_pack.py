"""tools/cv_base_pack.py: a cross-validation base packed in float16 with a card whose checksums
match the packed files, and a real MONAI network warm-started from it (the use it is kept for)."""
import json
from pathlib import Path

import pytest
import torch

from LiverLVTLib.segmentation.model import sha256_file


def _run(folder: Path) -> Path:
    from monai.networks.nets import UNet

    folder.mkdir()
    net = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(4, 8), strides=(2,), num_res_units=1)
    torch.save(net.state_dict(), folder / "fine.pt")
    torch.save({"w": torch.linspace(0, 1, 5), "steps": torch.tensor(7)}, folder / "coarse.pt")
    card = {"stages": [{"name": "coarse", "weights": "coarse.pt", "sha256": sha256_file(folder / "coarse.pt")},
                       {"name": "fine", "weights": "fine.pt", "sha256": sha256_file(folder / "fine.pt")}],
            "training": {"excluded": ["crlm-1100"]}}
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_the_base_is_half_precision_and_warm_starts_a_float32_network(tmp_path, load_tool):
    from monai.networks.nets import UNet

    run, out = _run(tmp_path / "run"), tmp_path / "base"
    assert load_tool("cv_base_pack").main(["--run", str(run), "--out", str(out)]) == 0
    coarse = torch.load(out / "coarse.pt", weights_only=True)
    assert coarse["w"].dtype == torch.float16 and coarse["steps"].dtype == torch.int64
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["excluded"] == ["crlm-1100"], "the training record travels with the base"
    assert "crlm-1100" in (out / "README.md").read_text(), "the short card names what it never saw"
    assert all(s["sha256"] == sha256_file(out / s["weights"]) for s in card["stages"])
    packed = torch.load(out / "fine.pt", weights_only=True)
    assert {v.dtype for v in packed.values() if v.is_floating_point()} == {torch.float16}
    net = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(4, 8), strides=(2,), num_res_units=1)
    net.load_state_dict(torch.load(out / "fine.pt", weights_only=True))
    original = torch.load(run / "fine.pt", weights_only=True)
    for name, value in net.state_dict().items():
        assert value.dtype == original[name].dtype
        assert torch.allclose(value.float(), original[name].float(), atol=1e-3, rtol=1e-3), name


def test_an_existing_base_is_not_overwritten(tmp_path, load_tool):
    run, out = _run(tmp_path / "run"), tmp_path / "base"
    out.mkdir()
    (out / "fine.pt").write_bytes(b"kept")
    with pytest.raises(SystemExit, match="exists"):
        load_tool("cv_base_pack").main(["--run", str(run), "--out", str(out)])
    assert (out / "fine.pt").read_bytes() == b"kept"
