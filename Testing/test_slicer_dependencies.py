"""The in-Slicer dependency installer's decisions (Slicer's pip and PyTorch extension faked)."""
from __future__ import annotations

import pytest

from LiverLVTLib.app.dependencies import DependencyError, ensure, plan


def _importable(missing):
    return lambda name: name not in missing


class FakeTorchUtils:
    def __init__(self, ok=True):
        self.calls, self.ok = [], ok

    def installTorch(self, **kwargs):  # noqa: N802 - PyTorchUtils' API name
        self.calls.append(kwargs)
        return object() if self.ok else None


def test_nothing_missing_asks_nothing():
    asked = []
    todo = ensure(asked.append, lambda args: asked.append(args), None, _importable(set()))
    assert todo.empty and asked == []


def test_asks_before_installing_and_protects_numpy_and_simpleitk(tmp_path):
    asked, pip_calls = [], []
    torch_utils = FakeTorchUtils()
    todo = ensure(lambda text: asked.append(text) or True, pip_calls.append, torch_utils,
                  _importable({"torch", "monai"}),
                  version_of=lambda name: {"numpy": "1.26.4", "SimpleITK": "2.4.0"}[name])
    assert len(asked) == 1 and "monai" in asked[0] and "PyTorch" in asked[0]
    assert torch_utils.calls and torch_utils.calls[0]["askConfirmation"] is False
    (args,) = pip_calls
    assert any(a.startswith("monai") for a in args) and "-c" in args
    constraints = open(args[args.index("-c") + 1]).read()
    assert "numpy==1.26.4" in constraints and "SimpleITK==2.4.0" in constraints
    assert todo.torch_missing and todo.packages == ["monai>=1.4,<1.7"]


def test_refusal_installs_nothing():
    pip_calls = []
    with pytest.raises(DependencyError, match="not installed"):
        ensure(lambda text: False, pip_calls.append, FakeTorchUtils(), _importable({"monai"}))
    assert pip_calls == []


def test_missing_pytorch_extension_is_a_clear_message():
    with pytest.raises(DependencyError, match="PyTorch' extension"):
        ensure(lambda text: True, lambda args: None, None, _importable({"torch"}))


def test_failed_torch_install_is_reported():
    with pytest.raises(DependencyError, match="could not install PyTorch"):
        ensure(lambda text: True, lambda args: None, FakeTorchUtils(ok=False),
               _importable({"torch"}))


def test_plan_in_this_environment_is_complete():
    assert plan().empty  # the test venv has everything the engine needs
