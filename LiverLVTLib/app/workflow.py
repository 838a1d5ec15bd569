"""The one place the Slicer module joins the pipeline's stages: CT volume -> segmentation ->
analysis -> nodes in the scene (and back: edited segments -> analysis -> nodes).

:class:`CaseWorkflow` holds no MRML code and no engine code of its own; every stage comes in
through its constructor as a small :class:`typing.Protocol` seam (SlicerNNUNet style), so tests
pass fakes and the module passes the engine's functions and a :class:`SceneLogic`:

    segmenter(ct, model_dir=..., device=..., tta=..., progress=..., cancel=...) -> labels
    analyzer(ct, labels, n=..., m=..., cyst_rule=..., major_vessel_mm=...) -> measurements
    stager(lesions, n, m, major_vessel_mm=...) -> measurements["staging"]
    report_writer(measurements, ct, labels, out_dir) -> None   (report.html + json + csv)
    job_factory(ct_path, out_dir, device=..., model_dir=..., tta=..., python=..., work_dir=...,
                analysis=...) -> a started-later background job (``SegmentationJob``)
    scene_logic: :class:`Publisher` (``LiverLVTLib.mrml.logic.SceneLogic``)

The engine's messages are written for its command line; the errors the workflow raises to the
module say the module's controls instead of flags (``mrml.presentation.for_slicer``).
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol

import SimpleITK as sitk

from ..core.errors import InputError, LiverLVTError
from ..core.options import AnalysisOptions
from ..core.progress import CancelToken, checker, no_progress
from ..mrml.presentation import for_slicer

_DEFAULTS = AnalysisOptions()  # N/M defaults live in core.options


# ----------------------------------------------------------------------------- seams
class Segmenter(Protocol):
    def __call__(self, ct: sitk.Image, *, model_dir=None, device: str = "auto", tta=None,
                 progress=None, cancel: Optional[CancelToken] = None) -> sitk.Image: ...


class Analyzer(Protocol):
    def __call__(self, ct: sitk.Image, labels: sitk.Image, **options: Any) -> dict: ...


class Stager(Protocol):
    def __call__(self, lesions: List[dict], n: str, m: str, **options: Any) -> dict: ...


class ReportWriter(Protocol):
    def __call__(self, measurements: dict, ct: sitk.Image, labels: sitk.Image,
                 out_dir) -> None: ...


class JobFactory(Protocol):
    def __call__(self, ct_path, out_dir, **options: Any) -> Any: ...


class Publisher(Protocol):
    """What the workflow needs of the scene logic (``mrml.logic.SceneLogic``)."""

    def ct_of(self, volume_node) -> sitk.Image: ...

    def publish(self, volume_node, labels: sitk.Image, measurements: dict,
                per_lesion_segments: Optional[bool] = False, ct: Optional[sitk.Image] = None,
                segmentation_node=None) -> Any: ...

    def set_measurements(self, volume_node, measurements: dict) -> Any: ...

    def measurements_of(self, volume_node) -> Optional[dict]: ...

    def volume_of(self, segmentation_node) -> Any: ...

    def outputs_of(self, volume_node) -> Dict[str, Any]: ...

    def labels_from_segmentation(self, segmentation_node, reference: sitk.Image) -> sitk.Image: ...

    def export_models(self, segmentation_node, folder, file_format: str = "STL") -> List[Path]: ...


# ----------------------------------------------------------------------------- the engine
# The engine's own stages, imported when first used. These adapters are the only place where
# the workflow speaks the engine's call signatures.
def engine_segmenter(ct, **kwargs):
    from ..segmentation.pipeline import segment_ct

    return segment_ct(ct, **kwargs)


def engine_analyzer(ct, labels, **kwargs):
    from ..analysis.measure import analyze_case

    return analyze_case(ct, labels, **kwargs)


def engine_stager(lesions, n, m, **kwargs):
    from ..analysis.staging import stage_case

    return stage_case(lesions, n, m, **kwargs)


def engine_report_writer(measurements, ct, labels, out_dir) -> None:
    from ..outputs.writer import write_analysis

    write_analysis(measurements, ct, labels, out_dir, models=False, report=True)


def engine_job_factory(ct_path, out_dir, **kwargs):
    from .background_job import SegmentationJob

    return SegmentationJob(ct_path, out_dir, **kwargs)


# ----------------------------------------------------------------------------- workflow
def in_module_words(method):
    """Re-raise an engine error that names CLI flags in the module's words (same class)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except LiverLVTError as error:
            if "--" not in str(error):
                raise
            try:
                reworded = type(error)(for_slicer(error.problem), for_slicer(error.fix))
            except TypeError:  # an error class with its own constructor: keep it as it is
                raise error from None
            raise reworded from error
    return wrapper


class CaseWorkflow:
    """Apply, Recompute, restage, report and background runs for one scene."""

    def __init__(self, scene_logic: Publisher, segmenter: Optional[Segmenter] = None,
                 analyzer: Optional[Analyzer] = None, stager: Optional[Stager] = None,
                 report_writer: Optional[ReportWriter] = None,
                 job_factory: Optional[JobFactory] = None):
        self.scene_logic = scene_logic
        self.segmenter = segmenter or engine_segmenter
        self.analyzer = analyzer or engine_analyzer
        self.stager = stager or engine_stager
        self.report_writer = report_writer or engine_report_writer
        self.job_factory = job_factory or engine_job_factory

    @classmethod
    def for_scene(cls, scene, segmentations_logic=None, **seams) -> "CaseWorkflow":
        """A workflow publishing into ``scene`` through a new :class:`SceneLogic`."""
        from ..mrml.logic import SceneLogic

        return cls(SceneLogic(scene, segmentations_logic), **seams)

    # ------------------------------------------------------------------ whole runs
    @in_module_words
    def process(self, volume_node, model_dir=None, device: str = "auto", tta=None,
                n: str = _DEFAULTS.n, m: str = _DEFAULTS.m, per_lesion_segments: bool = False,
                progress=None, cancel: Optional[CancelToken] = None,
                analysis_options: Optional[dict] = None):
        """Segment ``volume_node`` in this process, analyse, and build the nodes. A Cancel (or
        any error) before the end leaves the scene unchanged."""
        progress = progress or no_progress
        ct = self.scene_logic.ct_of(volume_node)
        labels = self.segmenter(ct, model_dir=model_dir, device=device, tta=tta,
                                progress=progress, cancel=cancel)
        checker(cancel)()
        return self.apply_labels(volume_node, labels, n=n, m=m,
                                 per_lesion_segments=per_lesion_segments, ct=ct, cancel=cancel,
                                 analysis_options=analysis_options, progress=progress)

    @in_module_words
    def apply_labels(self, volume_node, labels: sitk.Image, n: str = _DEFAULTS.n, m: str = _DEFAULTS.m,
                     per_lesion_segments: bool = False, measurements: Optional[dict] = None,
                     ct: Optional[sitk.Image] = None, cancel: Optional[CancelToken] = None,
                     analysis_options: Optional[dict] = None, progress=None):
        """Labels (on the volume's grid) -> analysis (unless ``measurements`` are given, e.g.
        by the background job) -> segmentation, table, lines, text."""
        from ..core.io import as_labels

        progress = progress or no_progress
        ct = ct if ct is not None else self.scene_logic.ct_of(volume_node)
        labels = as_labels(labels, ct)
        if measurements is None:
            progress("analysis", 0.0)
            measurements = self.analyzer(ct, labels, n=n, m=m, **(analysis_options or {}))
            progress("analysis", 1.0)
        checker(cancel)()
        return self.scene_logic.publish(volume_node, labels, measurements,
                                        per_lesion_segments=per_lesion_segments, ct=ct)

    @in_module_words
    def recompute(self, segmentation_node, n: str = _DEFAULTS.n, m: str = _DEFAULTS.m,
                  per_lesion_segments: Optional[bool] = None,
                  analysis_options: Optional[dict] = None):
        """Measurements, lines and stage from the segmentation as it is now (after Segment
        Editor edits), without running the model."""
        volume_node = self._volume_of(segmentation_node)
        ct = self.scene_logic.ct_of(volume_node)
        labels = self.scene_logic.labels_from_segmentation(segmentation_node, ct)
        measurements = self.analyzer(ct, labels, n=n, m=m, **(analysis_options or {}))
        return self.scene_logic.publish(volume_node, labels, measurements,
                                        per_lesion_segments=per_lesion_segments, ct=ct,
                                        segmentation_node=segmentation_node)

    @in_module_words
    def restage(self, volume_node, n: str = _DEFAULTS.n, m: str = _DEFAULTS.m,
                major_vessel_mm: Optional[float] = None) -> Dict[str, Any]:
        """New N/M: the stage from the stored lesions, without measuring again."""
        measurements = self._stored(volume_node)
        if major_vessel_mm is None:
            major_vessel_mm = (measurements.get("staging", {}) or {}).get("major_vessel_mm")
        kwargs = {} if major_vessel_mm is None else {"major_vessel_mm": float(major_vessel_mm)}
        measurements["staging"] = self.stager(measurements.get("lesions", []), n, m, **kwargs)
        self.scene_logic.set_measurements(volume_node, measurements)
        return measurements

    @in_module_words
    def save_report(self, volume_node, out_dir, labels: Optional[sitk.Image] = None) -> Path:
        """The analysis's HTML report (and measurements.json, lesions.csv) for the current
        segmentation. ``out_dir`` is a folder the user picked (their own files may be there): the
        three files are written into a hidden staging folder inside it and each moved into place
        by one rename only once all are written, so a failure leaves the folder as it was and no
        other file is ever touched (:func:`core.results.staged_files`)."""
        from ..core.results import staged_files

        measurements = self._stored(volume_node)
        segmentation = self.scene_logic.outputs_of(volume_node).get("segmentation")
        if segmentation is None:
            raise InputError("no LiverLVT result for this volume", "run Apply first")
        ct = self.scene_logic.ct_of(volume_node)
        if labels is None:
            labels = self.scene_logic.labels_from_segmentation(segmentation, ct)
        with staged_files(out_dir) as stage:
            self.report_writer(measurements, ct, labels, stage)
        return Path(out_dir) / "report.html"

    @in_module_words
    def export_models(self, segmentation_node, folder, file_format: str = "STL") -> List[Path]:
        """The segments' closed surfaces as STL/OBJ files in ``folder`` (what Slicer's
        segmentation exporter writes, LPS)."""
        return self.scene_logic.export_models(segmentation_node, folder, file_format)

    # ------------------------------------------------------------------ background runs
    @in_module_words
    def start_background(self, volume_node, model_dir=None, device: str = "auto", tta=None,
                         python: Optional[str] = None,
                         analysis: Optional[Dict[str, Any]] = None):
        """Write the CT to a temporary file and start the engine in another process (then the
        analysis, with options ``n``, ``m``, ``cyst_rule``, ``major_vessel_mm``, when given)."""
        from ..core.io import write_image

        work = Path(tempfile.mkdtemp(prefix="liverlvt-"))
        ct_path = write_image(self.scene_logic.ct_of(volume_node), work / "ct.nrrd",
                              compress=False)
        job = self.job_factory(ct_path, work / "out", device=device, model_dir=model_dir,
                               tta=tta, python=python, work_dir=work, analysis=analysis)
        job.start()
        return job

    @in_module_words
    def finish_background(self, job, volume_node, per_lesion_segments: bool = False):
        """A finished job's labels (and measurements, when it analysed) -> nodes; its temporary
        files are removed whether or not it succeeded."""
        try:
            labels, measurements = job.labels(), job.measurements()
        finally:
            job.cleanup()
        return self.apply_labels(volume_node, labels, measurements=measurements,
                                 per_lesion_segments=per_lesion_segments)

    # ------------------------------------------------------------------ helpers
    def _volume_of(self, segmentation_node):
        volume_node = self.scene_logic.volume_of(segmentation_node)
        if volume_node is None:
            raise InputError("this segmentation has no CT volume attached",
                             "run Apply on the CT first, or set the segmentation's source volume")
        return volume_node

    def _stored(self, volume_node) -> dict:
        measurements = self.scene_logic.measurements_of(volume_node)
        if measurements is None:
            raise InputError("no LiverLVT result for this volume", "run Apply first")
        return measurements
