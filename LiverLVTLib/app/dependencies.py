"""Python dependencies inside 3D Slicer, installed the Slicer way on first use, from the one
dependency list: ``[project].dependencies`` of ``pyproject.toml`` (shipped with the extension,
beside ``LiverLVT.py``).

* PyTorch through the PyTorch extension's ``PyTorchUtils`` (it picks the CUDA/CPU build that
  fits the computer); without the extension the user is told to install it.
* numpy, SimpleITK and VTK are Slicer's own: never installed; numpy and SimpleITK are pinned to
  Slicer's versions in a pip constraints file so that no other package replaces them (nothing
  LiverLVT installs depends on VTK, whose Slicer build has no pip metadata to pin).
* The rest (MONAI, scipy, connected-components-3d, tqdm, matplotlib, contourpy, ...) after asking,
  with Slicer's ``slicer.pydeps.pip_ensure`` when this Slicer has it (5.11+), else with
  ``slicer.util.pip_install``.

Every Slicer-specific action (asking, pip, the PyTorch extension, ``slicer.pydeps``) is passed in,
so this module imports nothing from Slicer and its decisions are unit-tested.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..core.errors import LiverLVTError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
MIN_TORCH = "2.0"
TORCH = "torch"  # installed by the PyTorch extension
PROTECTED = ("numpy", "SimpleITK")  # Slicer's own, pinned in the pip constraints file
SLICER_PROVIDED = (*PROTECTED, "vtk")  # Slicer ships them: never pip-installed
IMPORT_NAMES: Dict[str, str] = {"connected-components-3d": "cc3d"}  # where the names differ


class DependencyError(LiverLVTError):
    """A dependency is missing and could not (or may not) be installed."""


# ----------------------------------------------------------------------------- the list
def canonical(name: str) -> str:
    """PEP 503 name: ``SimpleITK`` -> ``simpleitk``, ``connected_components.3d`` -> ``...-3d``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_name(requirement: str) -> str:
    """``"monai>=1.4,<1.7"`` -> ``"monai"``."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(1)


def import_name(distribution: str) -> str:
    """The top-level module a distribution installs (``connected-components-3d`` -> ``cc3d``)."""
    return IMPORT_NAMES.get(distribution, distribution.replace("-", "_"))


def read_dependencies(path=PYPROJECT) -> List[str]:
    """``[project].dependencies`` of a pyproject.toml (tomllib on Python 3.11+, else a small
    parser for that one array)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return parse_dependencies(text)
    return [str(r).strip() for r in tomllib.loads(text).get("project", {}).get("dependencies", [])]


def parse_dependencies(text: str) -> List[str]:
    """The ``dependencies = [...]`` array of the ``[project]`` table, without a TOML library
    (one string per requirement, comments allowed)."""
    section = re.search(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    body = section and re.search(r"^dependencies\s*=\s*\[(.*?)\][ \t]*(?:#.*)?$", section.group(1),
                                 re.M | re.S)  # the "]" that ends its line closes the array
    if not body:
        return []
    lines = [re.sub(r"#.*$", "", line) for line in body.group(1).splitlines()]
    return [r.strip() for r in re.findall(r"[\"']([^\"']+)[\"']", "\n".join(lines))]


def slicer_requirements(path=PYPROJECT) -> List[str]:
    """What LiverLVT pip-installs inside Slicer: the dependency list without torch (the PyTorch
    extension's) and without Slicer's own numpy, SimpleITK and VTK."""
    skip = {canonical(name) for name in (TORCH, *SLICER_PROVIDED)}
    return [r for r in read_dependencies(path) if canonical(distribution_name(r)) not in skip]


# ----------------------------------------------------------------------------- the plan
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


def plan(importable: Callable[[str], bool] = _importable, path=PYPROJECT) -> Plan:
    """What is missing in this Python."""
    return Plan(torch_missing=not importable(TORCH),
                packages=[r for r in slicer_requirements(path)
                          if not importable(import_name(distribution_name(r)))])


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


# ----------------------------------------------------------------------------- installing
def ensure(confirm: Callable[[str], bool], pip_install: Callable[[list], None],
           torch_utils=None, importable: Callable[[str], bool] = _importable,
           version_of: Callable[[str], Optional[str]] = None, pydeps=None,
           path=PYPROJECT) -> Plan:
    """Install what is missing after the user agrees. ``confirm(text) -> bool`` asks (e.g.
    ``slicer.util.confirmOkCancelDisplay``); ``pip_install(args: list)`` is
    ``slicer.util.pip_install``; ``torch_utils`` is ``PyTorchUtils.PyTorchUtilsLogic()`` or None
    when the PyTorch extension is not installed; ``pydeps`` is ``slicer.pydeps`` where Slicer
    has it (then its ``pip_ensure`` installs). Returns what was (to be) installed."""
    todo = plan(importable, path)
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
        if pydeps is not None:
            _pip_ensure(pydeps, todo.packages, constraints, path)
        else:
            pip_install(list(todo.packages) + ["-c", str(constraints)])
    return todo


def _pip_ensure(pydeps, packages: List[str], constraints: Path, path) -> None:
    """Slicer's own installer on the same requirements, read by Slicer from the same file (the
    user already agreed, so it does not ask again)."""
    wanted = {canonical(distribution_name(r)) for r in packages}
    requirements = [r for r in pydeps.load_pyproject_dependencies(path)
                    if canonical(r.name) in wanted]
    pydeps.pip_ensure(requirements, constraints=str(constraints), prompt_install=False,
                      requester="LiverLVT")
