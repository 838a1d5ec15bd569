"""LiverLVT: liver, hepatic vessel and liver tumor segmentation, measurement and staging in 3D Slicer.

The module is thin: the widget binds the UI (Resources/UI/LiverLVT.ui) to a parameter node and
forwards button presses to the module logic, which holds two engine objects as attributes:
``sceneLogic`` (``LiverLVTLib.mrml.logic.SceneLogic``: every MRML operation, the same on Slicer's
core libraries outside the application, e.g. tests and ``liverlvt ... --scene``) and ``workflow``
(``LiverLVTLib.app.workflow.CaseWorkflow``: segmentation -> analysis -> scene). Inference runs in a
background ``PythonSlicer`` process. User-visible strings go through ``_()`` (Slicer's
translation function).
"""
import importlib
import logging
import os
import pathlib
import sys
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

try:
    from slicer.i18n import tr as _
except ImportError:  # Slicer without translations (before 5.4)
    def _(text):
        return text


MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
if MODULE_DIR not in sys.path:  # LiverLVTLib is installed beside this file
    sys.path.insert(0, MODULE_DIR)

TERMINOLOGY_FILE = os.path.join(MODULE_DIR, "Resources", "Terminology",
                                "SegmentationCategoryTypeModifier-LiverLVT.term.json")


# ----------------------------------------------------------------------------- module
class LiverLVT(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LiverLVT")
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "Markups", "Tables", "Terminologies"]
        self.parent.contributors = ["LiverLVT developers"]
        self.parent.helpText = _(
            "Segments the liver, the hepatic vessels and liver tumors from an abdominal CT, "
            "measures every lesion (volume, longest axial diameter and its perpendicular, "
            "maximum 3-D diameter, HU, contact with hepatic vessels), triages cysts, and stages "
            "the case (the seed paper's CT rule and the AJCC 8th-edition T category).<br>"
            "After Apply: the segmentation '&lt;volume&gt; LVT', the table 'LiverLVT lesions' "
            "and two diameter lines per lesion. Edit the segments in Segment Editor, then "
            "press 'Recompute from the current segmentation'.<br>"
            "Method: multi-label liver/vessel/tumor network after Kim et al. 2024 (LVT), "
            "trained with MONAI (Cardoso et al. 2022, arXiv:2211.02701); RECIST 1.1 diameters "
            "(Eisenhauer et al. 2009); AJCC Cancer Staging Manual, 8th edition (Amin et al. "
            "2017).<br><b>Research use only: not a medical device.</b>")
        self.parent.acknowledgementText = _(
            "Built on 3D Slicer (Fedorov et al. 2012), MONAI, PyTorch and SimpleITK. Segment "
            "terminology follows SNOMED-CT as used by SlicerTotalSegmentator. Test data: "
            "3D-IRCADb-01 (IRCAD), The Cancer Imaging Archive collections, LiTS.")
        slicer.app.connect("startupCompleted()", _register_terminology)


def _register_terminology():
    """Make LiverLVT's segment terminology known to Slicer's terminology selector."""
    logic = slicer.modules.terminologies.logic() if hasattr(slicer.modules, "terminologies") \
        else None
    if logic is not None and os.path.isfile(TERMINOLOGY_FILE):
        logic.LoadTerminologyFromFile(TERMINOLOGY_FILE)


# ----------------------------------------------------------------------------- parameters
# defaults and choices come from the engine's one home of them (core.options: no numpy, no torch)
from LiverLVTLib.core.options import CYST_RULES, DEVICES, M_VALUES, N_VALUES, AnalysisOptions, SegmentOptions  # noqa: E402

_ANALYSIS_DEFAULTS, _SEGMENT_DEFAULTS = AnalysisOptions(), SegmentOptions()


def _first(values, default) -> list:
    """Choice list with the default first (the order the combo boxes show)."""
    return [default] + [v for v in values if v != default]


@parameterNodeWrapper
class LiverLVTParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    modelFolder: pathlib.Path
    device: Annotated[str, Choice(list(DEVICES))] = _SEGMENT_DEFAULTS.device
    tta: bool = False
    perLesionSegments: bool = False
    cystRule: Annotated[str, Choice(_first(CYST_RULES, _ANALYSIS_DEFAULTS.cyst_rule))] = _ANALYSIS_DEFAULTS.cyst_rule
    majorVesselMm: Annotated[float, WithinRange(1.0, 30.0)] = _ANALYSIS_DEFAULTS.major_vessel_mm
    outputSegmentation: vtkMRMLSegmentationNode
    exportFormat: Annotated[str, Choice(["STL", "OBJ"])] = "STL"
    nCategory: Annotated[str, Choice(_first(N_VALUES, _ANALYSIS_DEFAULTS.n))] = _ANALYSIS_DEFAULTS.n
    mCategory: Annotated[str, Choice(_first(M_VALUES, _ANALYSIS_DEFAULTS.m))] = _ANALYSIS_DEFAULTS.m


# ----------------------------------------------------------------------------- logic
class LiverLVTLogic(ScriptedLoadableModuleLogic):
    """Slicer's module logic (parameter node, ``slicer.util.getModuleLogic``) holding the
    engine's two objects as explicit attributes, bound to the application's scene:
    ``sceneLogic`` (MRML nodes in and out) and ``workflow`` (segmentation, analysis, staging,
    report and background runs, publishing through ``sceneLogic``). Either may be passed in
    (tests, other modules)."""

    def __init__(self, sceneLogic=None, workflow=None):
        ScriptedLoadableModuleLogic.__init__(self)
        from LiverLVTLib.app.workflow import CaseWorkflow
        from LiverLVTLib.mrml.logic import SceneLogic

        self.sceneLogic = sceneLogic or SceneLogic(slicer.mrmlScene,
                                                   slicer.modules.segmentations.logic())
        self.workflow = workflow or CaseWorkflow(self.sceneLogic)

    def getParameterNode(self):
        return LiverLVTParameterNode(super().getParameterNode())


# ----------------------------------------------------------------------------- widget
class LiverLVTWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """UI glue only: parameters <-> widgets, buttons -> Logic, background job -> progress bar."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self.onTimer)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LiverLVT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LiverLVTLogic()
        self._fillModelList()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.recomputeButton.connect("clicked(bool)", self.onRecomputeButton)
        self.ui.exportModelsButton.connect("clicked(bool)", self.onExportModelsButton)
        self.ui.saveReportButton.connect("clicked(bool)", self.onSaveReportButton)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelSelected)
        self.ui.nSelector.connect("currentIndexChanged(int)", self.onStagingInputChanged)
        self.ui.mSelector.connect("currentIndexChanged(int)", self.onStagingInputChanged)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                                   self.onOutputChanged)
        self.initializeParameterNode()

    def _fillModelList(self):
        from LiverLVTLib.segmentation.model import available_models

        for folder in available_models():
            self.ui.modelSelector.addItem(folder.name, str(folder))

    def onReload(self):
        """Developer reload: the engine (LiverLVTLib) first, then this file and the widget."""
        reloadLiverLVTLib()
        ScriptedLoadableModuleWidget.onReload(self)

    # --------------------------------------------------------------- parameter node lifecycle
    def cleanup(self):
        self.removeObservers()
        self._cancelJob()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self._updateButtons)

    def onSceneStartClose(self, caller, event):
        self._cancelJob()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        from LiverLVTLib.segmentation.model import default_model_dir

        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass(
                "vtkMRMLScalarVolumeNode")
        if not str(self._parameterNode.modelFolder or "").strip(". "):
            self._parameterNode.modelFolder = default_model_dir()

    def setParameterNode(self, inputParameterNode: Optional[LiverLVTParameterNode]):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None):
        hasInput = bool(self._parameterNode and self._parameterNode.inputVolume)
        hasOutput = bool(self._parameterNode and self._parameterNode.outputSegmentation)
        running = self._job is not None
        self.ui.applyButton.enabled = hasInput or running
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        for button in (self.ui.recomputeButton, self.ui.exportModelsButton,
                       self.ui.saveReportButton):
            button.enabled = hasOutput and not running

    def _analysisOptions(self, staging=True):
        p = self._parameterNode
        options = {"cyst_rule": p.cystRule, "major_vessel_mm": float(p.majorVesselMm)}
        return {**options, "n": p.nCategory, "m": p.mCategory} if staging else options

    # --------------------------------------------------------------- Apply / Cancel
    def onApplyButton(self):
        if self._job is not None:
            self._cancelJob()
            self.ui.statusLabel.text = _("Cancelled: the scene is unchanged.")
            return
        with slicer.util.tryWithErrorDisplay(_("LiverLVT could not start."), waitCursor=True):
            self._ensureDependencies()
            from LiverLVTLib.app.background_job import check_device, python_executable

            device, note = check_device(self._parameterNode.device)
            p = self._parameterNode
            self._job = self.logic.workflow.start_background(
                p.inputVolume, model_dir=str(p.modelFolder), device=device, tta=p.tta,
                python=python_executable(slicer.app.slicerHome),
                analysis=self._analysisOptions())
            self._startProgress(note or _("Segmenting in the background..."))

    def _startProgress(self, message):
        self.ui.progressBar.visible = True
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = message
        self._timer.start()
        self._updateButtons()

    def onTimer(self):
        running = self._job.poll()
        self.ui.progressBar.value = int(100 * self._job.fraction)
        self.ui.progressBar.format = f"{self._job.stage} %p%"
        if not running:
            self._finishJob()

    def _finishJob(self):
        job, self._job = self._job, None
        self._timer.stop()
        self.ui.progressBar.visible = False
        self._updateButtons()
        with slicer.util.tryWithErrorDisplay(_("LiverLVT failed."), waitCursor=True):
            p = self._parameterNode
            self._showResult(self.logic.workflow.finish_background(
                job, p.inputVolume, per_lesion_segments=p.perLesionSegments))

    def _cancelJob(self):
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._timer.stop()
        self.ui.progressBar.visible = False
        self._updateButtons()

    # --------------------------------------------------------------- results
    def onRecomputeButton(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Recompute failed."), waitCursor=True):
            self._showResult(self.logic.workflow.recompute(
                p.outputSegmentation, n=p.nCategory, m=p.mCategory,
                per_lesion_segments=p.perLesionSegments,
                analysis_options=self._analysisOptions(staging=False)))

    def onStagingInputChanged(self, _index=None):
        qt.QTimer.singleShot(0, self._restage)  # after the parameter node took the new value

    def _restage(self):
        p = self._parameterNode
        if not p or not p.outputSegmentation or self._job is not None:
            return
        volume = self.logic.sceneLogic.volume_of(p.outputSegmentation)
        with slicer.util.tryWithErrorDisplay(_("Staging failed."), waitCursor=True):
            self._showStaging(self.logic.workflow.restage(volume, p.nCategory, p.mCategory,
                                                          float(p.majorVesselMm)))

    def onOutputChanged(self, node):
        if node is None:
            return
        volume = self.logic.sceneLogic.volume_of(node)
        measurements = self.logic.sceneLogic.measurements_of(volume) if volume else None
        if measurements:
            self._showStaging(measurements)

    def _showResult(self, result):
        self._parameterNode.outputSegmentation = result.segmentation_node
        self._showStaging(result.measurements)
        slicer.util.setSliceViewerLayers(background=result.volume_node)
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
            selection = slicer.app.applicationLogic().GetSelectionNode()
            selection.SetActiveTableID(result.table_node.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
        self.ui.statusLabel.text = _("Done: {count} lesions.").format(
            count=len(result.measurements.get("lesions", [])))

    def _showStaging(self, measurements):
        from LiverLVTLib.mrml.presentation import ajcc_line, rationale_text, staging_summary

        s = staging_summary(measurements)
        self.ui.paperStageLabel.text = s["paper_stage"] or "-"
        self.ui.ajccLabel.text = ajcc_line(s)
        self.ui.liverVolumeLabel.text = _("{volume:.0f} mL").format(volume=s["liver_volume_ml"])
        self.ui.tumorBurdenLabel.text = _("{burden:.1f} %").format(burden=s["tumor_burden_percent"])
        self.ui.rationaleTextEdit.plainText = rationale_text(measurements)

    def onExportModelsButton(self):
        folder = qt.QFileDialog.getExistingDirectory(None, _("Export models to folder"))
        if not folder:
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            files = self.logic.workflow.export_models(p.outputSegmentation, folder,
                                                      p.exportFormat)
            self.ui.statusLabel.text = _("Wrote {count} {format} files to {folder}.").format(
                count=len(files), format=p.exportFormat, folder=folder)

    def onSaveReportButton(self):
        folder = qt.QFileDialog.getExistingDirectory(None, _("Save the report to folder"))
        if not folder:
            return
        volume = self.logic.sceneLogic.volume_of(self._parameterNode.outputSegmentation)
        with slicer.util.tryWithErrorDisplay(_("Saving the report failed."), waitCursor=True):
            path = self.logic.workflow.save_report(volume, folder)
            self.ui.statusLabel.text = _("Report: {path}").format(path=path)
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(path)))

    def onModelSelected(self, index):
        folder = self.ui.modelSelector.itemData(index)
        if folder and self._parameterNode:
            self._parameterNode.modelFolder = pathlib.Path(folder)

    # --------------------------------------------------------------- dependencies
    def _ensureDependencies(self):
        from LiverLVTLib.app.dependencies import ensure

        ensure(lambda text: slicer.util.confirmOkCancelDisplay(text, _("LiverLVT dependencies")),
               slicer.util.pip_install, _pyTorchUtils(), pydeps=_slicerPydeps())


def _pyTorchUtils():
    """The PyTorch extension's logic (it installs the torch build that fits the computer), or
    None when the extension is not installed."""
    try:
        import PyTorchUtils
    except ImportError:
        return None
    return PyTorchUtils.PyTorchUtilsLogic()


def _slicerPydeps():
    """Slicer's package helpers (``slicer.pydeps``, Slicer 5.11+: ``load_pyproject_dependencies``
    and ``pip_ensure``), or None on older Slicer, where ``slicer.util.pip_install`` is used."""
    for name in ("slicer.pydeps", "slicer.packaging"):
        try:
            helpers = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(helpers, "pip_ensure") and hasattr(helpers, "load_pyproject_dependencies"):
            return helpers
    return None


def reloadLiverLVTLib():
    """Reload every loaded LiverLVTLib module with importlib: all are dropped from
    ``sys.modules`` and imported again, so each one runs after the modules it imports and binds
    their new objects (reloading one by one would leave a module holding its neighbours' old
    classes). When an edited file fails to import, the previous modules are put back."""
    old = {name: module for name, module in sys.modules.items() if module is not None
           and (name == "LiverLVTLib" or name.startswith("LiverLVTLib."))
           and not name.endswith(".__main__")}
    for name in old:
        del sys.modules[name]
    try:
        for name in sorted(old):
            importlib.import_module(name)
    except Exception:
        for name, module in old.items():
            sys.modules.setdefault(name, module)
        raise
    logging.info(f"LiverLVT: reloaded {len(old)} LiverLVTLib modules")
    return sorted(old)


# ----------------------------------------------------------------------------- self-test
class LiverLVTTest(ScriptedLoadableModuleTest):
    """Runs the Logic on the built-in phantom (its exact labels stand in for the network: no
    network access, no GPU) and checks segments, terminology, surfaces, table, lines, staging,
    the edit round trip and Cancel, with the same checks as the pytest suite."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LiverLVT_phantom()

    def test_LiverLVT_phantom(self):
        from LiverLVTLib.app.selftest import run_phantom_scenario

        self.delayDisplay(_("LiverLVT self-test on the phantom"))
        outcome = run_phantom_scenario(slicer.mrmlScene, slicer.modules.segmentations.logic(),
                                       log=lambda text: self.delayDisplay(text, 10))
        self.assertIsNotNone(outcome["result"].table_node)
        logging.info("LiverLVT self-test passed")
        self.delayDisplay(_("Test passed"))
