"""Python dependencies inside 3D Slicer, installed the Slicer way on first use.

* PyTorch through the PyTorch extension's ``PyTorchUtils`` (it picks the CUDA/CPU build that
  fits the computer); without the extension the user is told to install it.
* MONAI and the rest with ``slicer.util.pip_install``, after asking, with a pip constraints
  file pinning the numpy and SimpleITK that Slicer ships, so they are never replaced.

Every Slicer-specific action (asking, pip, the PyTorch extension) is passed in as a callable, so
this module imports nothing from Slicer and its decisions are unit-tested.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from ..core.errors import LiverLVTError

MIN_TORCH = "2.0"
# (import name, pip requirement) besides torch; versions follow pyproject.toml
REQUIREMENTS = (
    ("monai", "monai>=1.4,<1.7"),
    ("scipy", "scipy>=1.10"),
    ("cc3d", "connected-components-3d>=3.12"),
    ("tqdm", "tqdm>=4.60"),
)
# packages Slicer ships and LiverLVT must never replace
PROTECTED = ("numpy", "SimpleITK")


class DependencyError(LiverLVTError):
    """A dependency is missing and could not (or may not) be installed."""


@dataclass
class Plan:
    torch_missing: bool
    packages: List[str]  # pip requirements to install

    @property
    def empty(self) -> bool:
        return not self.torch_missing and not self.packages

    def describe(self) -> str:
        parts = (["PyTorch (through the PyTorch extension)"] if self.torch_missing else []) \
            + self.packages
        return ", ".join(parts)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def plan(importable: Callable[[str], bool] = _importable) -> Plan:
    """What is missing in this Python."""
    return Plan(torch_missing=not importable("torch"),
                packages=[req for name, req in REQUIREMENTS if not importable(name)])


def constraints_file(folder: Optional[Path] = None,
                     version_of: Callable[[str], Optional[str]] = None) -> Path:
    """A pip constraints file pinning the protected packages to their installed versions."""
    version_of = version_of or _installed_version
    lines = [f"{name}=={version}" for name in PROTECTED
             if (version := version_of(name)) is not None]
    folder = Path(folder or tempfile.mkdtemp(prefix="liverlvt-pip-"))
    path = folder / "liverlvt-constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure(confirm: Callable[[str], bool], pip_install: Callable[[str], None],
           torch_utils=None, importable: Callable[[str], bool] = _importable,
           version_of: Callable[[str], Optional[str]] = None) -> Plan:
    """Install what is missing after the user agrees. ``confirm(text) -> bool`` asks (e.g.
    ``slicer.util.confirmOkCancelDisplay``); ``pip_install(args: list)`` is
    ``slicer.util.pip_install``; ``torch_utils`` is ``PyTorchUtils.PyTorchUtilsLogic()`` or None
    when the PyTorch extension is not installed. Returns what was (to be) installed."""
    todo = plan(importable)
    if todo.empty:
        return todo
    if todo.torch_missing and torch_utils is None:
        raise DependencyError("LiverLVT needs PyTorch, installed by the PyTorch extension",
                              "install the 'PyTorch' extension from the Extensions Manager, "
                              "restart Slicer and press Apply again")
    if not confirm("LiverLVT needs these Python packages: " + todo.describe()
                   + ".\nInstall them now? (needs a network connection; may take minutes)"):
        raise DependencyError("the required Python packages were not installed",
                              "press Apply again and accept the installation")
    if todo.torch_missing:
        if torch_utils.installTorch(askConfirmation=False,
                                    torchVersionRequirement=f">={MIN_TORCH}") is None:
            raise DependencyError("the PyTorch extension could not install PyTorch",
                                  "install it from the PyTorch module (Utilities / PyTorch)")
    if todo.packages:
        constraints = constraints_file(version_of=version_of)
        pip_install(list(todo.packages) + ["-c", str(constraints)])
    return todo
