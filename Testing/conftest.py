"""Shared pytest fixtures: the real-data folder (skip cleanly without it) and a tiny
random-weight model folder for plumbing tests (never presented as a result)."""
from __future__ import annotations

import importlib.util
import json
import locale
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def shared_data_dir() -> Path | None:
    """``$LIVERLVT_DATA`` or ``../shared/data`` beside the checkout, when it holds a manifest."""
    for candidate in (os.environ.get("LIVERLVT_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "manifest.json").is_file():
            return Path(candidate)
    return None


@pytest.fixture(autouse=True)
def _keep_locale():
    """GDCM's DICOM writer (used by the DICOM fault tests) can leave the process in the "C"
    character locale, which turns Python's default text encoding into ASCII for every later test;
    put back the locale each test started with."""
    before = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != before:
        locale.setlocale(locale.LC_ALL, before)


SKIP_NO_DATA = "needs the real CT cases in ../shared/data (or $LIVERLVT_DATA); not present here"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(SKIP_NO_DATA)
    return path


@pytest.fixture(scope="session")
def manifest(shared_data) -> dict:
    return json.loads((shared_data / "manifest.json").read_text())


def case_entry(manifest: dict, case_id: str) -> dict:
    for entry in manifest["cases"]:
        if entry["id"] == case_id:
            return entry
    pytest.skip(f"case {case_id} not in the manifest")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A two-stage (coarse -> fine) model folder with small random-weight MONAI UNets."""
    import torch

    from LiverLVTLib.segmentation.model import write_card

    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    net = {"class": "UNet", "args": {"spatial_dims": 3, "in_channels": 1, "out_channels": 3,
                                     "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}}
    stages = []
    for name, spacing, roi in (("coarse", [6.0, 6.0, 6.0], None),
                               ("fine", [4.0, 4.0, 4.0], {"from": "coarse", "channel": "liver",
                                                          "margin_mm": 10})):
        from monai.networks.nets import UNet

        torch.save(UNet(**net["args"]).state_dict(), folder / f"{name}.pt")
        stage = {"name": name, "weights": f"{name}.pt", "network": net, "spacing_mm": spacing,
                 "window_hu": [-200, 300], "patch_size": [32, 32, 32]}
        if roi:
            stage["roi"] = roi
        stages.append(stage)
    write_card(folder, {"name": "tiny-random-test-model", "stages": stages,
                        "inference": {"overlap": 0.25, "sw_batch_size": 2, "threshold": 0.5},
                        "postprocess": {"min_tumor_ml": 0.0}, "license": "test only"})
    return folder


@pytest.fixture
def phantom_manifest(tmp_path):
    """Factory: ``make(annotated)`` writes the small phantom (seed 2) as the one case "ph" of a
    manifest under ``tmp_path/data`` and returns (manifest path, phantom)."""
    import json

    from LiverLVTLib.core import io
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    def make(annotated):
        ph = make_small_phantom(seed=2)
        data = tmp_path / "data"
        (data / "cases" / "ph").mkdir(parents=True, exist_ok=True)
        io.write_image(ph.ct, data / "cases" / "ph" / "ct.nii.gz")
        io.write_image(ph.labels, data / "cases" / "ph" / "labels.nii.gz")
        (data / "manifest.json").write_text(json.dumps({"cases": [
            {"id": "ph", "ct": "cases/ph/ct.nii.gz", "labels": "cases/ph/labels.nii.gz",
             "annotated": list(annotated), "phase": "portal-venous", "license": "synthetic"}]}))
        return data / "manifest.json", ph

    return make


@pytest.fixture(scope="session")
def load_tool():
    """Import a script of tools/ by name (tools/ is not a package): load_tool("soup")."""
    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
