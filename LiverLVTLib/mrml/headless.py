"""A headless Slicer application core (MRML scene + module logics) on the ``slicer-core`` wheel.

Inside desktop Slicer the application builds the scene and registers every module logic; the
LiverLVT Logic then uses ``slicer.mrmlScene`` and ``slicer.modules.*.logic()``. Outside Slicer
(pytest, ``liverlvt ... --scene``) this module builds the same pieces from Kitware's
``slicer-core`` wheel, in the order a Slicer application does it: scene, application logic,
colors, then each module logic attached to both the scene and the application logic and
registered under its module name so that logics which look each other up find one another.

Nothing here is mocked: these are Slicer's own C++ classes (MRML, Segmentations, Markups,
Tables, Volumes, Subject hierarchy, Terminologies), wrapped for Python by the wheel.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict

RESOURCES = Path(__file__).resolve().parents[2] / "Resources"
TERMINOLOGY_FILE = RESOURCES / "Terminology" / "SegmentationCategoryTypeModifier-LiverLVT.term.json"


class SlicerCoreUnavailable(ImportError):
    """``slicer-core`` (or desktop Slicer) is not importable in this Python."""


def import_slicer():
    """Import the ``slicer`` package (desktop Slicer or the slicer-core wheel) or raise a clear
    :class:`SlicerCoreUnavailable`."""
    try:
        import slicer  # noqa: F401 - the wheel registers every MRML/logic class on import
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SlicerCoreUnavailable(
            f"3D Slicer's MRML libraries cannot be imported ({exc}). Fix: pip install "
            "slicer-core (Kitware's wheel of Slicer's core) or run inside 3D Slicer") from None
    return slicer


@contextlib.contextmanager
def quiet_vtk_errors():
    """Silence VTK's error log for a moment (used while the terminology logic looks for Slicer's
    default terminology files, which the slicer-core wheel does not ship)."""
    import vtk

    logger = vtk.vtkLogger
    previous = logger.GetCurrentVerbosityCutoff()
    logger.SetStderrVerbosity(logger.VERBOSITY_OFF)
    try:
        yield
    finally:
        logger.SetStderrVerbosity(previous if previous >= 0 else logger.VERBOSITY_INFO)


@dataclass
class HeadlessSlicer:
    """The scene and the module logics LiverLVT needs, wired like a Slicer application."""

    scene: Any
    app_logic: Any
    logics: Dict[str, Any] = field(default_factory=dict)

    @property
    def segmentations_logic(self):
        return self.logics["Segmentations"]

    @property
    def terminologies_logic(self):
        return self.logics["Terminologies"]

    def node_count(self) -> int:
        return self.scene.GetNumberOfNodes()

    def clear(self) -> None:
        """Close the scene (like File / Close scene)."""
        self.scene.Clear(False)


def _register(app: HeadlessSlicer, name: str, logic, share_dir: Path | None = None):
    """Attach a module logic to the application: share folder, application logic, scene."""
    if share_dir is not None:
        logic.SetModuleShareDirectory(str(share_dir))
    logic.SetMRMLApplicationLogic(app.app_logic)
    logic.SetMRMLScene(app.scene)
    app.app_logic.SetModuleLogic(name, logic)
    app.logics[name] = logic
    return logic


def create_headless_slicer(load_terminology: bool = True) -> HeadlessSlicer:
    """Build a fresh scene with the application, color, volumes, segmentations, markups, tables,
    subject hierarchy and terminologies logics (Slicer's own classes)."""
    slicer = import_slicer()
    import vtk

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.SetSliceLogics(vtk.vtkCollection())  # no views: headless
    app_logic.SetViewLogics(vtk.vtkCollection())
    app = HeadlessSlicer(scene=scene, app_logic=app_logic)

    colors = app_logic.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic("Colors", colors)
    app.logics["Colors"] = colors

    _register(app, "Volumes", slicer.vtkSlicerVolumesLogic())
    with quiet_vtk_errors():  # Slicer's default terminology JSON files are not in the wheel
        terminologies = _register(app, "Terminologies", slicer.vtkSlicerTerminologiesModuleLogic(),
                                  share_dir=TERMINOLOGY_FILE.parent)
    if load_terminology and TERMINOLOGY_FILE.is_file():
        terminologies.LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    _register(app, "Segmentations", slicer.vtkSlicerSegmentationsModuleLogic())
    _register(app, "SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic())
    _register(app, "Markups", slicer.vtkSlicerMarkupsLogic())
    _register(app, "Tables", slicer.vtkSlicerTablesLogic())
    _add_subject_hierarchy_items_for_new_nodes(app)
    return app


def _add_subject_hierarchy_items_for_new_nodes(app: HeadlessSlicer) -> None:
    """Give every new data node a subject hierarchy item at the scene level, as Slicer's
    subject hierarchy plugins do in the desktop application (they are Qt code, absent here).
    Slicer's own logics (e.g. export of segments to models) then re-parent those items."""
    slicer = import_slicer()
    import vtk

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(app.scene)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def on_node_added(scene, _event, node):
        if scene.IsImporting() or node is None or not node.IsA("vtkMRMLStorableNode"):
            return
        if node.GetHideFromEditors() or node.IsA("vtkMRMLColorNode"):
            return
        if not sh.GetItemByDataNode(node):
            sh.CreateItem(sh.GetSceneItemID(), node)

    app.scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, on_node_added)
    app.logics["_sh_observer"] = on_node_added  # keep the callback alive with the app


def load_scene_bundle(path, temporary_dir) -> HeadlessSlicer:
    """Open a ``.mrb`` scene bundle into a fresh headless application (reads every node's data)."""
    from ..core.errors import InputError

    app = create_headless_slicer()
    Path(temporary_dir).mkdir(parents=True, exist_ok=True)
    if not app.app_logic.OpenSlicerDataBundle(str(path), str(temporary_dir)):
        raise InputError(f"'{path}' cannot be opened as a Slicer scene bundle (.mrb)",
                         "write it again with --scene")
    return app
