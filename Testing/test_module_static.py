"""Static checks of the Slicer module, which cannot run without desktop Slicer here:
widget names used in LiverLVT.py exist in the .ui file, every parameter of the wrapper is bound
to a widget, the Widget holds no logic, the self-test is real, the extension build lists every
file."""
from __future__ import annotations

import ast
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "LiverLVT.py"
UI = REPO / "Resources" / "UI" / "LiverLVT.ui"
CMAKE = REPO / "CMakeLists.txt"


@pytest.fixture(scope="module")
def tree():
    return ast.parse(MODULE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ui():
    return ET.parse(UI).getroot()


def _class(tree, name):
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} not in LiverLVT.py")


def _widget_names(ui):
    return [w.get("name") for w in ui.iter("widget")]


def _bound_parameters(ui):
    bound = {}
    for widget in ui.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    return bound


def _ui_attributes(tree):
    """Names X used as self.ui.X anywhere in LiverLVT.py."""
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "ui" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            names.add(node.attr)
    return names


def _parameters(tree):
    cls = _class(tree, "LiverLVTParameterNode")
    assert any(getattr(d, "id", None) == "parameterNodeWrapper" for d in cls.decorator_list)
    return {n.target.id: ast.unparse(n.annotation) for n in cls.body
            if isinstance(n, ast.AnnAssign)}


def test_ui_file_is_designer_xml_with_unique_names(ui):
    assert ui.tag == "ui" and ui.findtext("class") == "LiverLVT"
    names = _widget_names(ui)
    assert len(names) == len(set(names)), "duplicate widget names in the .ui"


def test_every_widget_the_module_uses_exists_in_the_ui(tree, ui):
    missing = _ui_attributes(tree) - set(_widget_names(ui))
    assert not missing, f"LiverLVT.py uses widgets not in LiverLVT.ui: {sorted(missing)}"


def test_every_parameter_is_bound_to_a_widget_of_a_fitting_kind(tree, ui):
    parameters, bound = _parameters(tree), _bound_parameters(ui)
    assert set(parameters) == set(bound), (
        f"unbound parameters {sorted(set(parameters) - set(bound))}, "
        f"bindings without parameter {sorted(set(bound) - set(parameters))}")
    fitting = {"vtkMRML": {"qMRMLNodeComboBox"}, "bool": {"QCheckBox"},
               "Choice": {"QComboBox"}, "float": {"QDoubleSpinBox", "ctkSliderWidget"},
               "pathlib.Path": {"ctkPathLineEdit"}}
    for name, annotation in parameters.items():
        kinds = next((v for k, v in fitting.items() if k in annotation), None)
        assert kinds, f"parameter {name}: {annotation} has no widget kind rule"
        assert bound[name] in kinds, f"parameter {name} ({annotation}) bound to a {bound[name]}"


def test_choices_match_the_combo_boxes(tree, ui):
    parameters = _parameters(tree)
    for widget in ui.iter("widget"):
        name = next((p.findtext("string") for p in widget.findall("property")
                     if p.get("name") == "SlicerParameterName"), None)
        if widget.get("class") != "QComboBox" or name is None:
            continue
        items = [i.find("property").findtext("string") for i in widget.findall("item")]
        choices = eval(re.search(r"Choice\((.*)\)\]", parameters[name]).group(1), _choice_namespace(tree))
        assert items == list(choices), name


def _choice_namespace(tree) -> dict:
    """What the parameter node's Choice(...) expressions see: the engine's option constants and
    the module's _first() helper (defaults and choices have one home: core.options)."""
    from LiverLVTLib.core import options

    namespace = {k: getattr(options, k) for k in dir(options) if not k.startswith("__")}
    first = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_first")
    exec(compile(ast.Module([first], []), "LiverLVT.py", "exec"), namespace)
    namespace["_ANALYSIS_DEFAULTS"] = options.AnalysisOptions()
    namespace["_SEGMENT_DEFAULTS"] = options.SegmentOptions()
    return namespace


def test_widget_is_thin(tree):
    """No MRML building, image maths or engine calls in the Widget: they live in the Logic."""
    widget = _class(tree, "LiverLVTWidget")
    source = ast.unparse(widget)
    for forbidden in ("AddNewNodeByClass", "GetSegmentation()", "RemoveNode", "SetAttribute",
                      "sitk.", "np.", "numpy", "SimpleITK", "segment_ct", "analyze_case",
                      "subprocess"):
        assert forbidden not in source, f"the Widget does '{forbidden}'; move it to the Logic"
    for method in widget.body:
        if isinstance(method, ast.FunctionDef):
            length = method.end_lineno - method.lineno + 1
            assert length <= 30, f"Widget.{method.name} has {length} lines"


def test_module_metadata(tree):
    source = MODULE.read_text(encoding="utf-8")
    module = _class(tree, "LiverLVT")
    text = ast.unparse(module)
    assert 'self.parent.categories = [\'Segmentation\']' in text
    for field in ("title", "contributors", "helpText", "acknowledgementText"):
        assert f"self.parent.{field}" in text
    assert "Kim et al. 2024" in source and "AJCC" in source  # seed papers cited
    assert "import qt" in source  # the GUI lives here, not in LiverLVTLib


def test_self_test_is_not_a_placeholder(tree):
    test = _class(tree, "LiverLVTTest")
    source = ast.unparse(test)
    assert "def runTest" in source and "run_phantom_scenario" in source
    assert "slicer.mrmlScene" in source


def test_logic_imports_no_qt():
    """No engine file, the MRML logic and the app layer included, imports Qt: only the Widget in
    LiverLVT.py does."""
    files = sorted((REPO / "LiverLVTLib").rglob("*.py"))
    assert any(f.parent.name == "mrml" for f in files) and any(f.parent.name == "app" for f in files)
    for path in files:
        name = str(path.relative_to(REPO))
        source = path.read_text(encoding="utf-8")
        imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(source))
                    if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
        assert not imported & {"qt", "ctk", "PythonQt"}, f"{name} imports Qt"


def test_extension_cmake_lists_everything():
    text = CMAKE.read_text(encoding="utf-8")
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS",
                "EXTENSION_DEPENDS", "slicerMacroBuildScriptedModule", "WITH_GENERIC_TESTS",
                "slicer_add_python_unittest", "Slicer_EXTENSION_GENERATE_CONFIG"):
        assert key in text, key
    assert "${MODULE_NAME}.py" in text and "LiverLVTLib/*.py" in text
    assert "GLOB_RECURSE LIVERLVTLIB_PYTHON_SCRIPTS" in text  # the subpackages are installed too
    for pattern in ("Resources/UI/*.ui", "Resources/Icons/*.png", "Resources/Terminology/*.json",
                    "Resources/Models/*"):
        assert pattern in text, pattern
    # the one dependency list travels with the extension, beside LiverLVT.py and LiverLVTLib/
    assert re.search(r"MODULE_PYTHON_RESOURCES[^)]*\bpyproject\.toml\b", text)
    # every resource the module loads is matched by those globs
    assert UI.is_file() and (REPO / "Resources/Icons/LiverLVT.png").is_file()
    assert list((REPO / "Resources/Terminology").glob("*.term.json"))


def test_icon_is_a_128_png():
    data = (REPO / "Resources/Icons/LiverLVT.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128)


# ----------------------------------------------------------------------------- module logic
def test_module_logic_holds_the_engine_as_attributes_without_forwarding(tree):
    logic = _class(tree, "LiverLVTLogic")
    methods = {n.name for n in logic.body if isinstance(n, ast.FunctionDef)}
    assert "__getattr__" not in methods and "__getattribute__" not in methods
    assigned = {t.attr for n in ast.walk(logic) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
    assert {"sceneLogic", "workflow"} <= assigned
    source = ast.unparse(logic)
    assert "SceneLogic(" in source and "CaseWorkflow(" in source


def test_engine_class_names_differ_from_the_modules():
    """No engine class shares a name with a class of LiverLVT.py (two LiverLVTLogic classes
    were confusing in tracebacks and in ``slicer.util.getModuleLogic``)."""
    module_classes = {n.name for n in ast.parse(MODULE.read_text(encoding="utf-8")).body
                      if isinstance(n, ast.ClassDef)}
    for path in sorted((REPO / "LiverLVTLib").rglob("*.py")):
        engine_classes = {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                          if isinstance(n, ast.ClassDef)}
        assert not engine_classes & module_classes, (path, engine_classes & module_classes)


def test_widget_calls_the_logic_through_its_two_attributes(tree):
    widget = ast.unparse(_class(tree, "LiverLVTWidget"))
    calls = set(re.findall(r"self\.logic\.(\w+)", widget))
    assert calls <= {"sceneLogic", "workflow", "getParameterNode"}, calls


def test_on_reload_reloads_the_engine_before_the_widget(tree):
    widget = _class(tree, "LiverLVTWidget")
    method = next((n for n in widget.body if isinstance(n, ast.FunctionDef) and n.name == "onReload"),
                  None)
    assert method is not None, "LiverLVTWidget has no onReload"
    calls = [ast.unparse(c.func) for c in ast.walk(method) if isinstance(c, ast.Call)]
    assert calls.index("reloadLiverLVTLib") < calls.index("ScriptedLoadableModuleWidget.onReload")
    helper = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "reloadLiverLVTLib")
    assert "importlib.import_module" in ast.unparse(helper)


_RELOAD_CHECK = """
import importlib, json, logging, sys
sys.path.insert(0, {repo!r})
import LiverLVTLib.app.workflow, LiverLVTLib.mrml.logic
before = {{n: id(m) for n, m in sys.modules.items() if n.startswith("LiverLVTLib")}}
old_for_slicer = LiverLVTLib.mrml.presentation.for_slicer
{helper}
names = reloadLiverLVTLib()
workflow, presentation = sys.modules["LiverLVTLib.app.workflow"], sys.modules["LiverLVTLib.mrml.presentation"]
print(json.dumps({{"names": names, "before": sorted(before),
                  "renewed": all(id(sys.modules[n]) != i for n, i in before.items()),
                  "consistent": workflow.for_slicer is presentation.for_slicer is not old_for_slicer}}))
"""


def test_reload_renews_every_engine_module_consistently():
    """``reloadLiverLVTLib`` run for real, in a fresh Python (it would swap the classes under the
    other tests): every loaded LiverLVTLib module is a new module afterwards, and an upper
    module holds the new objects of the lower ones."""
    import json
    import subprocess
    import sys

    helper = next(n for n in ast.parse(MODULE.read_text(encoding="utf-8")).body
                  if isinstance(n, ast.FunctionDef) and n.name == "reloadLiverLVTLib")
    script = _RELOAD_CHECK.format(repo=str(REPO), helper=ast.unparse(helper))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["names"] == out["before"] and "LiverLVTLib.mrml.logic" in out["names"]
    assert out["renewed"] and out["consistent"]


def test_user_strings_go_through_the_translation_function(tree):
    """Texts the user reads (labels, buttons, dialogs, error titles, module texts) are ``_()``
    calls, and ``_`` falls back to the plain text where Slicer has no translations."""
    fallback = [n for n in tree.body if isinstance(n, ast.Try)
                and "slicer.i18n" in ast.unparse(n) and "def _(" in ast.unparse(n)]
    assert fallback, "no `from slicer.i18n import tr as _` with a fallback"
    bare = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            target = ast.unparse(node.targets[0])
            if (target.endswith((".text", ".plainText", ".title", ".helpText", ".acknowledgementText"))
                    and isinstance(node.value, (ast.Constant, ast.JoinedStr))):
                bare.append(ast.unparse(node))
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                ("tryWithErrorDisplay", "getExistingDirectory", "confirmOkCancelDisplay", "delayDisplay")):
            bare += [ast.unparse(node) for a in node.args
                     if isinstance(a, (ast.Constant, ast.JoinedStr)) and isinstance(getattr(a, "value", ""), str)]
    assert not bare, f"user strings without _(): {bare}"
