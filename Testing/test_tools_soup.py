"""tools/soup.py: one stage's weights averaged over runs, the card's sha256 rewritten, the other
stages and the source runs left as they were."""
import json
from pathlib import Path

import pytest
import torch

from LiverLVTLib.segmentation.model import sha256_file


def _run(folder: Path, value: float, shape=(2, 3)) -> Path:
    folder.mkdir()
    torch.save({"w": torch.full(shape, value), "steps": torch.tensor(7)}, folder / "fine.pt")
    torch.save({"w": torch.full((4,), value)}, folder / "coarse.pt")
    card = {"stages": [{"name": "coarse", "weights": "coarse.pt", "sha256": sha256_file(folder / "coarse.pt")},
                       {"name": "fine", "weights": "fine.pt", "sha256": sha256_file(folder / "fine.pt")}]}
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_the_stage_is_averaged_and_its_checksum_rewritten(tmp_path, load_tool):
    a, b = _run(tmp_path / "a", 1.0), _run(tmp_path / "b", 3.0)
    before = sha256_file(a / "fine.pt")
    out = tmp_path / "soup"
    assert load_tool("soup").main(["--stage", "fine", "--runs", str(a), str(b), "--out", str(out)]) == 0
    state = torch.load(out / "fine.pt", weights_only=True)
    assert torch.allclose(state["w"], torch.full((2, 3), 2.0)) and int(state["steps"]) == 7
    card = json.loads((out / "model.json").read_text())
    fine, coarse = card["stages"][1], card["stages"][0]
    assert fine["sha256"] == sha256_file(out / "fine.pt") != before
    assert coarse["sha256"] == sha256_file(out / "coarse.pt") == sha256_file(a / "coarse.pt")
    assert sha256_file(a / "fine.pt") == before, "the source run is untouched"


def test_different_networks_and_an_existing_folder_are_refused(tmp_path, load_tool):
    a, b = _run(tmp_path / "a", 1.0), _run(tmp_path / "b", 3.0, shape=(3, 3))
    with pytest.raises(SystemExit, match="differ"):
        load_tool("soup").main(["--stage", "fine", "--runs", str(a), str(b), "--out", str(tmp_path / "soup")])
    assert not (tmp_path / "soup").exists(), "a refused soup leaves no folder behind"
    with pytest.raises(SystemExit, match="exists"):
        load_tool("soup").main(["--stage", "fine", "--runs", str(a), str(a), "--out", str(b)])
