"""The in-Slicer dependency installer's decisions (Slicer's pip, ``slicer.pydeps`` and the PyTorch
extension faked), and the one dependency list (pyproject.toml) covering every engine import."""
from __future__ import annotations

from pathlib import Path

import pytest

from LiverLVTLib.app.dependencies import DependencyError, ensure, plan

REPO = Path(__file__).resolve().parent.parent


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


# ----------------------------------------------------------------------------- one list
def test_install_set_is_pyproject_without_torch_and_slicers_own():
    from LiverLVTLib.app.dependencies import (
        PYPROJECT,
        canonical,
        distribution_name,
        read_dependencies,
        slicer_requirements,
    )

    assert PYPROJECT.is_file() and PYPROJECT.parent == REPO
    declared = read_dependencies()
    installed = slicer_requirements()
    names = {canonical(distribution_name(r)) for r in installed}
    assert {"contourpy", "matplotlib", "monai", "scipy", "connected-components-3d"} <= names
    assert not names & {"torch", "numpy", "simpleitk", "vtk"}  # PyTorch extension / Slicer's own
    assert set(installed) <= set(declared)
    assert len(declared) - len(installed) == 4  # exactly torch, numpy, SimpleITK, vtk left out


def test_toml_fallback_parser_reads_what_tomllib_reads():
    from LiverLVTLib.app.dependencies import PYPROJECT, parse_dependencies, read_dependencies

    assert parse_dependencies(PYPROJECT.read_text(encoding="utf-8")) == read_dependencies()
    text = '[project]\nname = "x"\ndependencies = [\n  "a>=1",  # why\n  \'b[c]<2\',\n]\n[tool.x]\n'
    assert parse_dependencies(text) == ["a>=1", "b[c]<2"]
    assert parse_dependencies("[tool.x]\ndependencies = ['no']\n") == []


HOST_PROVIDED = {"slicer"}  # the host application itself (slicer-core in the test extra)


def _runtime_imports():
    """Top-level third-party modules the engine imports, at module level or inside functions
    (``import x``, ``from x import y``, ``__import__("x")``, ``importlib.import_module("x")``)."""
    import ast
    import sys

    found = {}
    for path in sorted((REPO / "LiverLVTLib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and ast.unparse(node.func) in ("__import__", "importlib.import_module")):
                names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "LiverLVTLib":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_module_the_engine_imports_is_in_the_dependency_list():
    """Every LiverLVTLib file counts (training and evaluation too: their imports are covered
    anyway); only the host application (``slicer``) is not a dependency to install."""
    import importlib.metadata

    from LiverLVTLib.app.dependencies import IMPORT_NAMES, canonical, distribution_name, read_dependencies

    declared = {canonical(distribution_name(r)) for r in read_dependencies()}
    installed = importlib.metadata.packages_distributions()  # e.g. cc3d -> connected-components-3d
    by_import = {v: k for k, v in IMPORT_NAMES.items()}
    missing = {}
    imports = _runtime_imports()
    assert {"numpy", "SimpleITK", "monai", "contourpy", "matplotlib", "cc3d"} <= set(imports)
    for top, files in imports.items():
        if top in HOST_PROVIDED:
            continue
        distributions = installed.get(top) or [by_import.get(top, top)]
        if not {canonical(d) for d in distributions} & declared:
            missing[top] = sorted(files)
    assert not missing, f"imported but not in pyproject [project].dependencies: {missing}"


def test_import_names_of_the_install_check_are_right():
    """``plan`` checks each requirement by importing its module: the names must be importable."""
    from LiverLVTLib.app.dependencies import distribution_name, import_name, read_dependencies

    for requirement in read_dependencies():
        module = import_name(distribution_name(requirement))
        assert __import__(module), requirement


class FakePydeps:
    """``slicer.pydeps`` of Slicer 5.11+: load_pyproject_dependencies + pip_ensure."""

    def __init__(self):
        self.loaded, self.ensured = [], []

    def load_pyproject_dependencies(self, path):
        from packaging.requirements import Requirement

        from LiverLVTLib.app.dependencies import read_dependencies

        self.loaded.append(path)
        return [Requirement(r) for r in read_dependencies(path)]

    def pip_ensure(self, requirements, **kwargs):
        self.ensured.append(([str(r) for r in requirements], kwargs))


def test_slicer_pydeps_installs_when_slicer_has_it():
    pytest.importorskip("packaging")
    from LiverLVTLib.app.dependencies import PYPROJECT

    pydeps, pip_calls = FakePydeps(), []
    todo = ensure(lambda text: True, pip_calls.append, FakeTorchUtils(),
                  _importable({"matplotlib", "contourpy"}),
                  version_of=lambda name: {"numpy": "1.26.4", "SimpleITK": "2.4.0"}[name],
                  pydeps=pydeps)
    assert pip_calls == [] and pydeps.loaded == [PYPROJECT]
    ((requirements, kwargs),) = pydeps.ensured
    assert sorted(r.split(">")[0] for r in requirements) == ["contourpy", "matplotlib"]
    assert kwargs["prompt_install"] is False and kwargs["requester"] == "LiverLVT"
    assert "numpy==1.26.4" in open(kwargs["constraints"]).read()
    assert todo.packages == [r for r in todo.packages if r.startswith(("matplotlib", "contourpy"))]


def test_the_module_starts_before_the_dependencies_are_installed():
    """What LiverLVT.py imports when the module starts (its Logic, the installer, the job) loads
    none of the packages the installer may still have to install: Apply installs them first."""
    import json
    import subprocess
    import sys

    script = ("import json, sys; sys.path.insert(0, %r); import LiverLVTLib.mrml.logic, "
              "LiverLVTLib.app.workflow, LiverLVTLib.app.dependencies, LiverLVTLib.app.background_job, "
              "LiverLVTLib.mrml.presentation, LiverLVTLib.segmentation.model; "
              "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))" % str(REPO))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = set(json.loads(run.stdout.strip().splitlines()[-1]))
    later = {"torch", "monai", "scipy", "cc3d", "contourpy", "matplotlib", "tqdm", "jsonschema"}
    assert not loaded & later, sorted(loaded & later)
