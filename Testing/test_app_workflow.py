"""The module's workflow (``app.workflow.CaseWorkflow``) through its Protocol seams, with fakes
for every stage and for the scene logic (no MRML needed: what the scene logic does with real MRML
is tested in test_mrml_logic.py), and the staging panel's words."""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.app import workflow as wf
from LiverLVTLib.app.workflow import CaseWorkflow
from LiverLVTLib.core.errors import Cancelled, InputError, ModelError
from LiverLVTLib.core.progress import CancelToken


def _image(array, pixel=None):
    image = sitk.GetImageFromArray(np.asarray(array))
    image.SetSpacing((0.8, 0.8, 2.0))
    image.SetOrigin((1.0, 2.0, 3.0))
    return sitk.Cast(image, pixel) if pixel is not None else image


CT = _image(np.zeros((4, 5, 6), np.float32))
LABELS = _image(np.pad(np.ones((2, 3, 4), np.uint8), 1))
MEASUREMENTS = {"lesions": [{"id": 1, "max_3d_mm": 12.0}],
                "staging": {"major_vessel_mm": 7.0, "ajcc8": {"T": "T1a"}}}


class FakeScene:
    """The :class:`Publisher` seam: records what the workflow asks of the scene logic."""

    def __init__(self, stored=None, volume="vol"):
        self.calls, self.stored, self.volume = [], stored, volume

    def ct_of(self, volume_node):
        self.calls.append(("ct_of", volume_node))
        return CT

    def publish(self, volume_node, labels, measurements, per_lesion_segments=False, ct=None,
                segmentation_node=None):
        self.calls.append(("publish", volume_node, per_lesion_segments, segmentation_node))
        self.published = (labels, measurements, ct)
        return {"result": measurements}

    def set_measurements(self, volume_node, measurements):
        self.calls.append(("set_measurements", volume_node))
        self.stored = measurements

    def measurements_of(self, volume_node):
        return None if self.stored is None else dict(self.stored)

    def volume_of(self, segmentation_node):
        return self.volume

    def outputs_of(self, volume_node):
        return {"segmentation": "seg"} if self.stored is not None else {}

    def labels_from_segmentation(self, segmentation_node, reference):
        self.calls.append(("labels_from_segmentation", segmentation_node))
        return LABELS


class Recorder:
    def __init__(self, result=None):
        self.calls, self.result = [], result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


class FakeJob:
    def __init__(self, labels=LABELS, measurements=MEASUREMENTS, error=None):
        self._labels, self._measurements, self.error = labels, measurements, error
        self.started = self.cleaned = False

    def start(self):
        self.started = True

    def labels(self):
        if self.error:
            raise self.error
        return self._labels

    def measurements(self):
        return self._measurements

    def cleanup(self):
        self.cleaned = True


def _workflow(scene=None, **seams):
    seams.setdefault("segmenter", Recorder(LABELS))
    seams.setdefault("analyzer", Recorder(MEASUREMENTS))
    return CaseWorkflow(scene or FakeScene(), **seams)


def test_process_segments_analyses_and_publishes():
    scene, segmenter, analyzer = FakeScene(), Recorder(LABELS), Recorder(MEASUREMENTS)
    flow = _workflow(scene, segmenter=segmenter, analyzer=analyzer)
    stages = []
    result = flow.process("vol", model_dir="m", device="cpu", tta=False, n="N0", m="M0",
                          per_lesion_segments=True, progress=lambda *a: stages.append(a),
                          analysis_options={"cyst_rule": "off"})
    assert result == {"result": MEASUREMENTS}
    (args, kwargs), = segmenter.calls
    assert args == (CT,) and kwargs["model_dir"] == "m" and kwargs["device"] == "cpu"
    (args, kwargs), = analyzer.calls
    assert kwargs == {"n": "N0", "m": "M0", "cyst_rule": "off"}
    assert args[1].GetPixelID() == sitk.sitkUInt8  # labels validated before the analysis
    assert ("publish", "vol", True, None) in scene.calls and scene.published[2] is CT
    assert ("analysis", 1.0) in stages


def test_cancel_during_segmentation_publishes_nothing():
    def segmenter(ct, cancel=None, **_):
        cancel.cancel()
        return LABELS

    scene, analyzer = FakeScene(), Recorder(MEASUREMENTS)
    with pytest.raises(Cancelled):
        _workflow(scene, segmenter=segmenter, analyzer=analyzer).process("vol", cancel=CancelToken())
    assert analyzer.calls == [] and not [c for c in scene.calls if c[0] == "publish"]


def test_apply_labels_with_given_measurements_does_not_analyse():
    analyzer, scene = Recorder(MEASUREMENTS), FakeScene()
    _workflow(scene, analyzer=analyzer).apply_labels("vol", LABELS, measurements={"lesions": []})
    assert analyzer.calls == [] and scene.published[1] == {"lesions": []}


def test_apply_labels_refuses_labels_off_the_ct_grid():
    shifted = _image(np.zeros((4, 5, 6), np.uint8))
    shifted.SetOrigin((9.0, 9.0, 9.0))
    with pytest.raises(InputError, match="grid"):
        _workflow().apply_labels("vol", shifted)


def test_recompute_reads_the_edited_segments_and_keeps_the_segmentation():
    scene, analyzer = FakeScene(), Recorder(MEASUREMENTS)
    _workflow(scene, analyzer=analyzer).recompute("seg", n="N1", m="M0",
                                                  analysis_options={"major_vessel_mm": 4.0})
    assert ("labels_from_segmentation", "seg") in scene.calls
    assert ("publish", "vol", None, "seg") in scene.calls  # None: keep per-lesion choice
    assert analyzer.calls[0][1] == {"n": "N1", "m": "M0", "major_vessel_mm": 4.0}


def test_recompute_without_a_volume_says_what_to_do():
    with pytest.raises(InputError, match="run Apply on the CT first"):
        _workflow(FakeScene(volume=None)).recompute("seg")


def test_restage_uses_the_stored_lesions_and_threshold():
    scene, stager = FakeScene(stored=MEASUREMENTS), Recorder({"ajcc8": {"N": "N0"}})
    out = _workflow(scene, stager=stager).restage("vol", n="N0", m="M1")
    (args, kwargs), = stager.calls
    assert args == (MEASUREMENTS["lesions"], "N0", "M1") and kwargs == {"major_vessel_mm": 7.0}
    assert out["staging"] == {"ajcc8": {"N": "N0"}} and scene.stored["staging"] == out["staging"]
    with pytest.raises(InputError, match="run Apply first"):
        _workflow(FakeScene()).restage("vol")


def test_save_report_writes_from_the_current_segments(tmp_path):
    writer = Recorder()
    scene = FakeScene(stored=MEASUREMENTS)
    path = _workflow(scene, report_writer=writer).save_report("vol", tmp_path)
    assert path == tmp_path / "report.html"
    (args, _), = writer.calls
    assert args[0] == MEASUREMENTS and args[1] is CT and args[2] is LABELS
    assert Path(args[3]).parent == tmp_path and Path(args[3]).name.startswith(".liverlvt-saving-")
    with pytest.raises(InputError, match="run Apply first"):
        _workflow(FakeScene()).save_report("vol", tmp_path)


def _report_files(fail_on=None):
    """A report writer writing the three report files; OSError(ENOSPC) on ``fail_on``."""
    import errno

    def writer(measurements, ct, labels, out_dir):
        for name in ("report.html", "measurements.json", "lesions.csv"):
            if name == fail_on:
                (Path(out_dir) / name).write_text("half")
                raise OSError(errno.ENOSPC, "No space left on device", str(Path(out_dir) / name))
            (Path(out_dir) / name).write_text("new " + name)
    return writer


def test_save_report_keeps_the_users_files_and_replaces_its_own(tmp_path):
    (tmp_path / "my notes.txt").write_text("mine")
    (tmp_path / "report.html").write_text("old report")
    scene = FakeScene(stored=MEASUREMENTS)
    _workflow(scene, report_writer=_report_files()).save_report("vol", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesions.csv", "measurements.json",
                                                          "my notes.txt", "report.html"]
    assert (tmp_path / "report.html").read_text() == "new report.html"
    assert (tmp_path / "my notes.txt").read_text() == "mine"


def test_save_report_failure_leaves_the_folder_as_it_was(tmp_path):
    from LiverLVTLib.core.errors import OutputError

    (tmp_path / "my notes.txt").write_text("mine")
    (tmp_path / "report.html").write_text("old report")
    scene = FakeScene(stored=MEASUREMENTS)
    with pytest.raises(OutputError) as info:
        _workflow(scene, report_writer=_report_files("lesions.csv")).save_report("vol", tmp_path)
    text = str(info.value)
    assert str(tmp_path / "lesions.csv") in text and "No space left" in text and ".liverlvt-saving" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my notes.txt", "report.html"]
    assert (tmp_path / "report.html").read_text() == "old report"


def test_background_job_gets_the_ct_file_and_its_result_is_published():
    jobs = []

    def factory(ct_path, out_dir, **kwargs):
        assert sitk.ReadImage(str(ct_path)).GetSize() == CT.GetSize()  # the CT was written
        jobs.append((kwargs, FakeJob()))
        return jobs[-1][1]

    scene = FakeScene()
    flow = _workflow(scene, job_factory=factory)
    job = flow.start_background("vol", model_dir="m", device="cpu", python="py",
                                analysis={"n": "N0"})
    kwargs, made = jobs[0]
    assert job is made and job.started and kwargs["python"] == "py"
    assert kwargs["analysis"] == {"n": "N0"} and kwargs["work_dir"].is_dir()
    flow.finish_background(job, "vol", per_lesion_segments=True)
    assert job.cleaned and scene.published[1] == MEASUREMENTS


def test_failed_background_job_is_cleaned_up_and_told_in_the_modules_words():
    job = FakeJob(error=ModelError("the model folder is missing", "give --model DIR or --device cpu"))
    with pytest.raises(ModelError) as caught:
        _workflow().finish_background(job, "vol")
    assert job.cleaned
    assert "--" not in str(caught.value) and "model selector" in str(caught.value)


def test_the_default_seams_are_the_engines_stages():
    flow = CaseWorkflow(FakeScene())
    assert flow.segmenter is wf.engine_segmenter and flow.analyzer is wf.engine_analyzer
    assert flow.stager is wf.engine_stager and flow.job_factory is wf.engine_job_factory


def test_scene_logic_fulfils_the_publisher_seam():
    from LiverLVTLib.mrml.logic import SceneLogic

    wanted = [name for name, _ in inspect.getmembers(wf.Publisher, inspect.isfunction)
              if not name.startswith("_")]
    assert wanted and all(callable(getattr(SceneLogic, name, None)) for name in wanted)
    for name in wanted:
        want = list(inspect.signature(getattr(wf.Publisher, name)).parameters)
        have = list(inspect.signature(getattr(SceneLogic, name)).parameters)
        assert have[:len(want)] == want, name


def test_mrml_imports_no_pipeline_and_no_app():
    import ast
    from pathlib import Path

    folder = Path(wf.__file__).resolve().parents[1] / "mrml"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                module = node.module or ""
                assert not module.startswith(("app", "segmentation", "outputs", "training")), (path, module)
                if module.startswith("analysis"):
                    assert module == "analysis.lesions", (path, module)  # lesion masks only


# ----------------------------------------------------------------------------- panel words
def test_staging_panel_speaks_the_modules_controls_not_cli_flags():
    from LiverLVTLib.analysis.staging import stage_case
    from LiverLVTLib.mrml.presentation import for_slicer, rationale_text, staging_summary, staging_text

    lesions = [{"id": 1, "classification": "tumor", "max_3d_mm": 25.0, "longest_axial_mm": 24.0,
                "vessel_contact": {"in_contact": False}}]
    measurements = {"lesions": lesions, "staging": stage_case(lesions, "NX", "MX")}
    engine_words = " ".join(measurements["staging"]["ajcc8"]["rationale"])
    summary = staging_summary(measurements)
    shown = " ".join(summary["ajcc_rationale"] + summary["paper_rationale"])
    assert "--" not in shown and "--" not in staging_text(measurements)
    assert "--" not in rationale_text(measurements)
    if "--n/--m" in engine_words:
        assert "Choose N and M in the staging panel" in shown
    assert for_slicer("Give --n/--m for one.") == "Choose N and M in the staging panel for one."
    assert "--" not in for_slicer("use --n N0, --m M0, --cyst-rule acr, --major-vessel-mm 5")


def test_export_models_goes_to_the_scene_logic(tmp_path):
    scene = FakeScene()
    scene.export_models = Recorder([tmp_path / "Liver.stl"])
    assert _workflow(scene).export_models("seg", tmp_path, "OBJ") == [tmp_path / "Liver.stl"]
    assert scene.export_models.calls == [(("seg", tmp_path, "OBJ"), {})]


def test_python_slicer_is_looked_up_once_in_slicer_home_then_path(tmp_path, monkeypatch):
    import sys

    from LiverLVTLib.app.background_job import PYTHON_SLICER, python_executable

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert python_executable() == sys.executable  # outside Slicer: this Python
    assert python_executable(str(tmp_path)) == sys.executable  # no bin/PythonSlicer there
    (tmp_path / "bin").mkdir()
    launcher = tmp_path / "bin" / PYTHON_SLICER
    launcher.write_text("")
    assert python_executable(str(tmp_path)) == str(launcher)
