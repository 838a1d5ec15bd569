"""The layout holds: imports point down the pipeline's layers (import-linter contracts in
pyproject.toml), ruff is clean, no engine file over 450 lines, the package face imports."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: it comes with the [test] extra (./lvt test installs it)")
    return found


def test_import_layers_contract_holds():
    run = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Contracts: " in run.stdout and " broken" not in run.stdout.replace("0 broken", "")


def test_ruff_is_clean():
    run = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:]


def test_no_source_file_over_450_lines():
    files = [REPO / "LiverLVT.py", *sorted((REPO / "LiverLVTLib").rglob("*.py"))]
    long = {str(p.relative_to(REPO)): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, long


def test_no_function_over_60_lines():
    import ast

    files = [REPO / "LiverLVT.py", *sorted((REPO / "LiverLVTLib").rglob("*.py"))]
    long = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long[f"{path.relative_to(REPO)}:{node.name}"] = length
    assert not long, long


def test_pipeline_packages_have_a_face():
    for name in ("core", "segmentation", "analysis", "outputs", "mrml", "training", "evaluation",
                 "synthetic", "app", "cli"):
        init = REPO / "LiverLVTLib" / name / "__init__.py"
        assert init.is_file(), name
        assert init.read_text(encoding="utf-8").lstrip().startswith('"""'), f"{name}/__init__.py has no docstring"
