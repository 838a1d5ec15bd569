"""LiverLVT's Slicer Logic: labels + analysis -> MRML nodes a surgeon reads.

Imports MRML/VTK only (no ``qt``/``ctk``), so the same code runs inside desktop Slicer and on the
``slicer-core`` wheel (tests, ``liverlvt ... --scene``). The segmenter and the analyzer are
injectable callables, defaulting to the engine's ``segment_ct`` and ``analyze_case``:

    segmenter(ct, model_dir=..., device=..., tta=..., progress=..., cancel=...) -> labels
    analyzer(ct, labels, n=..., m=..., cyst_rule=..., major_vessel_mm=...) -> measurements dict

What :meth:`LiverLVTLogic.apply_labels` leaves in the scene for a volume "<v>":
  * segmentation "<v> LVT" beside the volume in the subject hierarchy: segments Liver, Hepatic
    vessels, Liver tumor (+ one per lesion when asked), SNOMED-CT terminology and colors,
    reference geometry from the volume, closed surfaces made by Slicer's converter;
  * folder "<v> LVT measurements" with the table "LiverLVT lesions", two line markups per lesion
    (longest axial diameter and its perpendicular) and a text node with measurements.json.
Nodes are found again by attributes (``LiverLVT.*``), so Recompute and a second Apply update them
in place instead of piling up copies.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ..app.background_job import SegmentationJob
from ..core.errors import InputError, LiverLVTError
from ..core.progress import CancelToken, checker, no_progress
from . import convert as mc

# ----------------------------------------------------------------------------- terminology
# SNOMED-CT codes as SlicerTotalSegmentator tags liver, liver_vessels and liver_tumor
# (TotalSegmentator/Resources/totalsegmentator_snomed_mapping.csv in lassoan/SlicerTotalSegmentator);
# colours are Slicer's GenericAnatomyColors entries (liver, mass) and its venous blue.
TERMINOLOGY_CONTEXT = "Segmentation category and type - LiverLVT"
REGION_CONTEXT = "Anatomic codes - DICOM master list"
ANATOMICAL_STRUCTURE = ("SCT", "123037004", "Anatomical Structure")
ALTERED_STRUCTURE = ("SCT", "49755003", "Morphologically Altered Structure")
LIVER_CODE = ("SCT", "10200004", "Liver")
BLOOD_VESSEL_CODE = ("SCT", "59820001", "Blood vessel")
NEOPLASM_CODE = ("SCT", "108369006", "Neoplasm")


@dataclass(frozen=True)
class SegmentSpec:
    label: int
    name: str
    category: tuple
    type: tuple
    region: Optional[tuple]
    color: tuple

    @property
    def terminology(self) -> str:
        """Slicer's serialized terminology entry: context~category~type~modifier~region
        context~region~region modifier, each code as scheme^value^meaning."""
        code = lambda c: "^".join(c) if c else "^^"  # noqa: E731
        return "~".join([TERMINOLOGY_CONTEXT, code(self.category), code(self.type), "^^",
                         REGION_CONTEXT, code(self.region), "^^"])

    @property
    def color_float(self) -> tuple:
        return tuple(c / 255.0 for c in self.color)


SEGMENTS = (
    SegmentSpec(1, "Liver", ANATOMICAL_STRUCTURE, LIVER_CODE, None, (221, 130, 101)),
    SegmentSpec(2, "Hepatic vessels", ANATOMICAL_STRUCTURE, BLOOD_VESSEL_CODE, LIVER_CODE,
                (0, 151, 206)),
    SegmentSpec(3, "Liver tumor", ALTERED_STRUCTURE, NEOPLASM_CODE, LIVER_CODE, (144, 238, 144)),
)
LESION_COLOR = (230, 200, 60)

# attributes / tags that let the Logic find its own nodes again
ROLE = "LiverLVT.role"
VOLUME_ID = "LiverLVT.volumeID"
LESION_TAG = "LiverLVT.lesion"
LABEL_TAG = "LiverLVT.label"
TABLE_NAME = "LiverLVT lesions"

# (column, measurement key, kind) of the lesion table; kind "s" string, "d" double
TABLE_COLUMNS = (
    ("Lesion", "id", "s"),
    ("Classification", "classification", "s"),
    ("Volume (mL)", "volume_ml", "d"),
    ("Longest axial (mm)", "longest_axial_mm", "d"),
    ("Short axis (mm)", "short_axis_mm", "d"),
    ("Max 3D (mm)", "max_3d_mm", "d"),
    ("Mean HU", "mean_hu", "d"),
    ("Std HU", "std_hu", "d"),
    ("Cyst-fit mean HU", "cyst_fit_mean_hu", "d"),
    ("Vessel contact", "vessel_contact.in_contact", "s"),
    ("Max contact vessel diameter (mm)", "vessel_contact.max_vessel_diameter_mm", "d"),
    ("Contact area (mm2)", "vessel_contact.contact_area_mm2", "d"),
    ("Centroid R (mm)", "centroid_ras.0", "d"),
    ("Centroid A (mm)", "centroid_ras.1", "d"),
    ("Centroid S (mm)", "centroid_ras.2", "d"),
)


# ----------------------------------------------------------------------------- results
@dataclass
class LVTResult:
    """What one Apply / Recompute produced."""

    volume_node: Any
    segmentation_node: Any
    table_node: Any
    text_node: Any
    line_nodes: Dict[str, List[Any]] = field(default_factory=dict)  # lesion id -> [long, short]
    measurements: Dict[str, Any] = field(default_factory=dict)

    @property
    def staging(self) -> Dict[str, Any]:
        return staging_summary(self.measurements)


def _lookup(record: dict, dotted: str):
    value: Any = record
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def staging_summary(measurements: dict) -> Dict[str, Any]:
    """The staging panel's content from the analysis's measurements dict."""
    staging = measurements.get("staging", {}) or {}
    paper, ajcc = staging.get("paper", {}) or {}, staging.get("ajcc8", {}) or {}
    liver = measurements.get("liver", {}) or {}
    return {
        "paper_stage": _as_text(paper.get("stage")),
        "paper_rationale": list(paper.get("rationale", []) or []),
        "T": _as_text(ajcc.get("T")), "N": _as_text(ajcc.get("N")), "M": _as_text(ajcc.get("M")),
        "stage_group": _as_text(ajcc.get("stage_group")),
        "ajcc_rationale": list(ajcc.get("rationale", []) or []),
        "liver_volume_ml": _as_float(liver.get("volume_ml")),
        "tumor_burden_percent": _as_float(measurements.get("tumor_burden_percent")),
        "n_lesions": len(measurements.get("lesions", []) or []),
    }


def staging_text(measurements: dict) -> str:
    """Plain-text staging summary (the panel's label, the self-test's log)."""
    s = staging_summary(measurements)
    lines = [f"Liver volume: {s['liver_volume_ml']:.0f} mL; tumor burden: "
             f"{s['tumor_burden_percent']:.1f} %; lesions: {s['n_lesions']}",
             f"Paper stage: {s['paper_stage'] or '-'}"]
    lines += [f"  - {r}" for r in s["paper_rationale"]]
    lines.append(f"AJCC 8: T {s['T'] or '-'}  N {s['N'] or '-'}  M {s['M'] or '-'}  "
                 f"stage group {s['stage_group'] or '-'}")
    lines += [f"  - {r}" for r in s["ajcc_rationale"]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- defaults
def default_segmenter(ct, **kwargs):
    from ..segmentation.pipeline import segment_ct

    return segment_ct(ct, **kwargs)


def default_analyzer(ct, labels, **kwargs):
    from ..analysis.measure import analyze_case

    return analyze_case(ct, labels, **kwargs)


class _SceneTransaction:
    """Remove every node added inside the block when the block raises (Cancel, errors), so
    the scene is left as it was."""

    def __init__(self, scene):
        self.scene = scene

    def __enter__(self):
        self.before = set(_node_ids(self.scene))
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        added = [i for i in _node_ids(self.scene) if i not in self.before]
        for node_id in reversed(added):
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)
        return False


def _node_ids(scene) -> List[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


# ----------------------------------------------------------------------------- the Logic
class LiverLVTLogic:
    """MRML side of LiverLVT. ``scene`` is ``slicer.mrmlScene`` in Slicer or the headless
    scene from :func:`LiverLVTLib.mrml.headless.create_headless_slicer`."""

    def __init__(self, scene, segmentations_logic=None,
                 segmenter: Callable = default_segmenter, analyzer: Callable = default_analyzer):
        self.scene = scene
        self.segmentations_logic = segmentations_logic
        self.segmenter = segmenter
        self.analyzer = analyzer

    # ------------------------------------------------------------------ whole runs
    def process(self, volume_node, model_dir=None, device: str = "auto", tta=None,
                n: str = "NX", m: str = "MX", per_lesion_segments: bool = False,
                progress=None, cancel: Optional[CancelToken] = None,
                analysis_options: Optional[dict] = None) -> LVTResult:
        """Segment ``volume_node`` in this process, analyse, and build the nodes. A Cancel (or
        any error) before the end leaves the scene unchanged."""
        progress = progress or no_progress
        check = checker(cancel)
        ct = mc.image_from_volume_node(volume_node, sitk.sitkFloat32)
        labels = self.segmenter(ct, model_dir=model_dir, device=device, tta=tta,
                                progress=progress, cancel=cancel)
        check()
        return self.apply_labels(volume_node, labels, n=n, m=m,
                                 per_lesion_segments=per_lesion_segments, ct=ct, cancel=cancel,
                                 analysis_options=analysis_options, progress=progress)

    def apply_labels(self, volume_node, labels: sitk.Image, n: str = "NX", m: str = "MX",
                     per_lesion_segments: bool = False, measurements: Optional[dict] = None,
                     ct: Optional[sitk.Image] = None, cancel: Optional[CancelToken] = None,
                     analysis_options: Optional[dict] = None, progress=None) -> LVTResult:
        """Labels (on the volume's grid) -> analysis -> segmentation, table, lines, text."""
        from ..core.io import as_labels

        progress = progress or no_progress
        ct = ct if ct is not None else mc.image_from_volume_node(volume_node, sitk.sitkFloat32)
        labels = as_labels(labels, ct)
        if measurements is None:
            progress("analysis", 0.0)
            measurements = self.analyzer(ct, labels, n=n, m=m, **(analysis_options or {}))
            progress("analysis", 1.0)
        checker(cancel)()
        with _SceneTransaction(self.scene):
            segmentation = self._segmentation_node(volume_node)
            self._fill_core_segments(segmentation, labels)
            result = self._publish(volume_node, segmentation, ct, labels, measurements,
                                   per_lesion_segments)
        return result

    def recompute(self, segmentation_node, n: str = "NX", m: str = "MX",
                  per_lesion_segments: Optional[bool] = None,
                  analysis_options: Optional[dict] = None) -> LVTResult:
        """Measurements, lines and stage from the segmentation as it is now (after Segment
        Editor edits), without running the model."""
        volume_node = self.volume_of(segmentation_node)
        if volume_node is None:
            raise InputError("this segmentation has no CT volume attached",
                             "run Apply on the CT first, or set the segmentation's source volume")
        ct = mc.image_from_volume_node(volume_node, sitk.sitkFloat32)
        labels = self.labels_from_segmentation(segmentation_node, ct)
        measurements = self.analyzer(ct, labels, n=n, m=m, **(analysis_options or {}))
        if per_lesion_segments is None:
            per_lesion_segments = bool(self._lesion_segment_ids(segmentation_node))
        with _SceneTransaction(self.scene):
            return self._publish(volume_node, segmentation_node, ct, labels, measurements,
                                 per_lesion_segments)

    def restage(self, volume_node, n: str = "NX", m: str = "MX",
                major_vessel_mm: Optional[float] = None) -> Dict[str, Any]:
        """New N/M: the stage from the stored lesions, without measuring again."""
        from ..analysis.staging import stage_case

        measurements = self.measurements_of(volume_node)
        if measurements is None:
            raise InputError("no LiverLVT result for this volume", "run Apply first")
        if major_vessel_mm is None:
            major_vessel_mm = (measurements.get("staging", {}) or {}).get("major_vessel_mm")
        kwargs = {} if major_vessel_mm is None else {"major_vessel_mm": float(major_vessel_mm)}
        measurements["staging"] = stage_case(measurements.get("lesions", []), n, m, **kwargs)
        self._measurements_text(volume_node, measurements)
        return measurements

    def _publish(self, volume_node, segmentation, ct, labels, measurements,
                 per_lesion_segments) -> LVTResult:
        self._set_lesion_segments(segmentation, ct, labels, measurements, per_lesion_segments)
        segmentation.CreateClosedSurfaceRepresentation()  # Slicer's labelmap->surface converter
        table = self._lesion_table(volume_node, measurements)
        lines = self._diameter_lines(volume_node, measurements)
        text = self._measurements_text(volume_node, measurements)
        self._arrange_hierarchy(volume_node, segmentation, [table, text]
                                + [node for pair in lines.values() for node in pair])
        return LVTResult(volume_node, segmentation, table, text, lines, measurements)

    # ------------------------------------------------------------------ finding nodes
    def _find_output(self, volume_node, role: str, node_class: str):
        nodes = self.scene.GetNodesByClass(node_class)
        for i in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(i)
            if (node.GetAttribute(ROLE) == role
                    and node.GetAttribute(VOLUME_ID) == volume_node.GetID()):
                return node
        return None

    def _new_output(self, volume_node, role: str, node_class: str, name: str):
        node = self.scene.AddNewNodeByClass(node_class, name)
        node.SetAttribute(ROLE, role)
        node.SetAttribute(VOLUME_ID, volume_node.GetID())
        return node

    def outputs_of(self, volume_node) -> Dict[str, Any]:
        """The LiverLVT nodes made for ``volume_node`` (empty dict when none)."""
        found = {"segmentation": self._find_output(volume_node, "segmentation",
                                                   "vtkMRMLSegmentationNode"),
                 "table": self._find_output(volume_node, "lesions", "vtkMRMLTableNode"),
                 "text": self._find_output(volume_node, "measurements", "vtkMRMLTextNode")}
        return {k: v for k, v in found.items() if v is not None}

    def volume_of(self, segmentation_node):
        node = segmentation_node.GetNodeReference(
            segmentation_node.GetReferenceImageGeometryReferenceRole())
        if node is None and segmentation_node.GetAttribute(VOLUME_ID):
            node = self.scene.GetNodeByID(segmentation_node.GetAttribute(VOLUME_ID))
        return node

    def measurements_of(self, volume_node) -> Optional[dict]:
        text = self._find_output(volume_node, "measurements", "vtkMRMLTextNode")
        return json.loads(text.GetText()) if text is not None and text.GetText() else None

    # ------------------------------------------------------------------ segmentation
    def _segmentation_node(self, volume_node):
        node = self._find_output(volume_node, "segmentation", "vtkMRMLSegmentationNode")
        if node is None:
            node = self._new_output(volume_node, "segmentation", "vtkMRMLSegmentationNode",
                                    f"{volume_node.GetName()} LVT")
            node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)  # DICOM SEG export
        display = node.GetDisplayNode()
        if display is not None:
            display.SetPreferredDisplayRepresentationName3D("Closed surface")
            display.SetVisibility(True)
        return node

    def _fill_core_segments(self, segmentation_node, labels: sitk.Image) -> None:
        """(Re)write Liver, Hepatic vessels and Liver tumor from the label map: one shared
        labelmap layer (the labels do not overlap), cropped to the labelled box."""
        import slicer

        array = sitk.GetArrayViewFromImage(labels)
        box = _bounding_box(array > 0) or (slice(0, 1),) * 3
        shared = mc.oriented_image_from_array(np.asarray(array[box], np.uint8), labels,
                                              [s.start for s in box])
        segmentation = segmentation_node.GetSegmentation()
        segmentation.SetSourceRepresentationName(
            slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
        for spec in SEGMENTS:
            old = self._core_segment_id(segmentation_node, spec.label)
            if old:
                segmentation.RemoveSegment(old)
        for spec in SEGMENTS:
            segment = slicer.vtkSegment()
            segment.SetName(spec.name)
            segment.SetColor(*spec.color_float)
            segment.SetTerminology(spec.terminology)
            segment.SetTag(LABEL_TAG, str(spec.label))
            segment.SetLabelValue(spec.label)
            segment.AddRepresentation(
                slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), shared)
            segmentation.AddSegment(segment, f"LiverLVT_{spec.label}")

    @staticmethod
    def _core_segment_id(segmentation_node, label: int) -> Optional[str]:
        segmentation = segmentation_node.GetSegmentation()
        for i in range(segmentation.GetNumberOfSegments()):
            if _segment_tag(segmentation.GetNthSegment(i), LABEL_TAG) == str(label):
                return segmentation.GetNthSegmentID(i)
        return None

    @staticmethod
    def _lesion_segment_ids(segmentation_node) -> List[str]:
        segmentation = segmentation_node.GetSegmentation()
        return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
                if segmentation.GetNthSegment(i).HasTag(LESION_TAG)]

    def segment_array(self, segmentation_node, segment_id: str, reference: sitk.Image):
        """Binary [k, j, i] mask of one segment on ``reference``'s grid."""
        import slicer

        image = slicer.vtkOrientedImageData()
        slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
            segmentation_node, segment_id, image, False)
        # a shared layer holds several segments, each as its own label value
        label_value = segmentation_node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
        return mc.array_on_reference(image, reference) == label_value

    def set_segment_array(self, segmentation_node, segment_id: str, mask: np.ndarray,
                          reference: sitk.Image) -> None:
        """Replace one segment's voxels (what a Segment Editor edit does)."""
        import slicer

        oriented = mc.oriented_image_from_array(np.asarray(mask, np.uint8), reference)
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        if not logic.SetBinaryLabelmapToSegment(oriented, segmentation_node, segment_id,
                                                logic.MODE_REPLACE, oriented.GetExtent()):
            raise LiverLVTError(f"segment '{segment_id}' could not be updated")

    def labels_from_segmentation(self, segmentation_node, reference: sitk.Image) -> sitk.Image:
        """The 0/1/2/3 label map of the current core segments (overlaps: tumor over vessel over
        liver, as the engine's labels are exclusive). Segments are found by their LiverLVT tag,
        so renaming them in the editor is fine."""
        out = np.zeros(reference.GetSize()[::-1], np.uint8)
        for spec in SEGMENTS:  # ascending label: later classes win overlaps
            segment_id = self._core_segment_id(segmentation_node, spec.label)
            if segment_id:
                out[self.segment_array(segmentation_node, segment_id, reference)] = spec.label
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(reference)
        return image

    def _set_lesion_segments(self, segmentation_node, ct, labels, measurements,
                             wanted: bool) -> None:
        """One segment per lesion ("Lesion <id>", separate layer) when asked; removed when not."""
        segmentation = segmentation_node.GetSegmentation()
        for segment_id in self._lesion_segment_ids(segmentation_node):
            segmentation.RemoveSegment(segment_id)
        if not wanted:
            return
        components = lesion_components(labels, measurements)
        for lesion_id, mask in components:
            box = _bounding_box(mask)
            if box is None:
                continue
            oriented = mc.oriented_image_from_array(mask[box].astype(np.uint8), labels,
                                                    [s.start for s in box])
            segment_id = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(
                oriented, f"Lesion {lesion_id}", [c / 255.0 for c in LESION_COLOR])
            segment = segmentation.GetSegment(segment_id)
            segment.SetTerminology(SEGMENTS[2].terminology)
            segment.SetTag(LESION_TAG, str(lesion_id))

    # ------------------------------------------------------------------ table
    def _lesion_table(self, volume_node, measurements: dict):
        import vtk

        table = self._find_output(volume_node, "lesions", "vtkMRMLTableNode")
        if table is None:
            table = self._new_output(volume_node, "lesions", "vtkMRMLTableNode", TABLE_NAME)
        lesions = measurements.get("lesions", []) or []
        vtk_table = vtk.vtkTable()
        for title, key, kind in TABLE_COLUMNS:
            column = vtk.vtkStringArray() if kind == "s" else vtk.vtkDoubleArray()
            column.SetName(title)
            for lesion in lesions:
                value = _lookup(lesion, key)
                if kind == "s":
                    column.InsertNextValue(_as_text(value))
                else:
                    column.InsertNextValue(_as_float(value))
            vtk_table.AddColumn(column)
        table.SetAndObserveTable(vtk_table)
        table.SetLocked(True)  # values come from the analysis; edits go through Recompute
        return table

    # ------------------------------------------------------------------ diameter lines
    def _diameter_lines(self, volume_node, measurements: dict) -> Dict[str, List[Any]]:
        self._remove_lines(volume_node)
        lines: Dict[str, List[Any]] = {}
        for lesion in measurements.get("lesions", []) or []:
            endpoints = lesion.get("axial_endpoints_ras") or []
            pair = []
            for axis, points in zip(("longest axial", "short axis"), endpoints):
                if points is None or len(points) != 2:
                    continue
                pair.append(self._line(volume_node, lesion["id"], axis, points))
            if pair:
                lines[str(lesion["id"])] = pair
        return lines

    def _line(self, volume_node, lesion_id, axis: str, points):
        import vtk

        line = self._new_output(volume_node, "diameter", "vtkMRMLMarkupsLineNode",
                                f"Lesion {lesion_id} {axis}")
        line.SetAttribute(LESION_TAG, str(lesion_id))
        line.SetAttribute("LiverLVT.axis", "long" if axis.startswith("longest") else "short")
        line.CreateDefaultDisplayNodes()
        for point in points:
            line.AddControlPoint(vtk.vtkVector3d(*[float(v) for v in point]))
        line.SetLocked(True)
        display = line.GetDisplayNode()
        if display is not None:
            color = (1.0, 0.9, 0.2) if axis.startswith("longest") else (0.3, 0.9, 1.0)
            display.SetSelectedColor(*color)
        return line

    def _remove_lines(self, volume_node) -> None:
        nodes = self.scene.GetNodesByClass("vtkMRMLMarkupsLineNode")
        stale = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
        for node in stale:
            if (node.GetAttribute(ROLE) == "diameter"
                    and node.GetAttribute(VOLUME_ID) == volume_node.GetID()):
                remove_node(self.scene, node)

    def line_nodes_of(self, volume_node) -> List[Any]:
        nodes = self.scene.GetNodesByClass("vtkMRMLMarkupsLineNode")
        return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())
                if nodes.GetItemAsObject(i).GetAttribute(ROLE) == "diameter"
                and nodes.GetItemAsObject(i).GetAttribute(VOLUME_ID) == volume_node.GetID()]

    # ------------------------------------------------------------------ text + hierarchy
    def _measurements_text(self, volume_node, measurements: dict):
        text = self._find_output(volume_node, "measurements", "vtkMRMLTextNode")
        if text is None:
            text = self._new_output(volume_node, "measurements", "vtkMRMLTextNode",
                                    f"{volume_node.GetName()} LVT measurements.json")
        text.SetText(json.dumps(measurements, indent=1, default=_json_default))
        return text

    def _arrange_hierarchy(self, volume_node, segmentation_node, measurement_nodes) -> None:
        """Segmentation beside its volume; table, lines and text in a folder beside it too."""
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        parent = sh.GetItemParent(_sh_item(sh, volume_node))
        sh.SetItemParent(_sh_item(sh, segmentation_node), parent)
        folder = _folder_item(sh, parent, f"{volume_node.GetName()} LVT measurements",
                              volume_node.GetID())
        for node in measurement_nodes:
            sh.SetItemParent(_sh_item(sh, node), folder)

    # ------------------------------------------------------------------ exports
    def export_models(self, segmentation_node, folder, file_format: str = "STL") -> List[Path]:
        """Closed surfaces to STL/OBJ files (LPS, like Slicer's Export to files)."""
        import slicer

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        before = set(folder.iterdir())
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsClosedSurfaceRepresentationToFiles(
            str(folder), segmentation_node, None, file_format.upper(), True, 1.0, False)
        if not ok:
            raise LiverLVTError(f"the segments could not be exported as {file_format}",
                                "check that the folder is writable")
        return sorted(set(folder.iterdir()) - before) or sorted(folder.iterdir())

    def add_model_nodes(self, segmentation_node):
        """One model node per segment in a "<segmentation> models" folder (for scene bundles)."""
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        parent = sh.GetItemParent(_sh_item(sh, segmentation_node))
        folder = sh.CreateFolderItem(parent, f"{segmentation_node.GetName()} models")
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToModels(
                segmentation_node, folder):
            raise LiverLVTError("the segments could not be converted to model nodes")
        return folder

    def save_report(self, volume_node, out_dir, labels: Optional[sitk.Image] = None) -> Path:
        """The analysis's HTML report (and measurements.json, lesions.csv) for the current
        segmentation."""
        from ..outputs.writer import write_analysis

        outputs = self.outputs_of(volume_node)
        measurements = self.measurements_of(volume_node)
        if "segmentation" not in outputs or measurements is None:
            raise InputError("no LiverLVT result for this volume", "run Apply first")
        ct = mc.image_from_volume_node(volume_node, sitk.sitkFloat32)
        if labels is None:
            labels = self.labels_from_segmentation(outputs["segmentation"], ct)
        write_analysis(measurements, ct, labels, out_dir, models=False, report=True)
        return Path(out_dir) / "report.html"

    # ------------------------------------------------------------------ background runs
    def start_background(self, volume_node, model_dir=None, device: str = "auto", tta=None,
                         python: Optional[str] = None,
                         analysis: Optional[Dict[str, Any]] = None) -> "SegmentationJob":
        """Write the CT to a temporary file and start the engine in another process (then the
        analysis, with options ``n``, ``m``, ``cyst_rule``, ``major_vessel_mm``, when given)."""
        from ..core.io import write_image

        work = Path(tempfile.mkdtemp(prefix="liverlvt-"))
        ct_path = write_image(mc.image_from_volume_node(volume_node, sitk.sitkFloat32),
                              work / "ct.nrrd", compress=False)
        job = SegmentationJob(ct_path, work / "out", device=device, model_dir=model_dir,
                              tta=tta, python=python, work_dir=work, analysis=analysis)
        job.start()
        return job


def _segment_tag(segment, name: str) -> Optional[str]:
    import vtk

    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else None


def remove_node(scene, node) -> None:
    """Remove a node with its display and storage nodes (the scene does not cascade)."""
    helpers = []
    for getter, count in (("GetNthDisplayNode", "GetNumberOfDisplayNodes"),
                          ("GetNthStorageNode", "GetNumberOfStorageNodes")):
        if hasattr(node, count):
            helpers += [getattr(node, getter)(i) for i in range(getattr(node, count)())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and scene.IsNodePresent(helper):
            scene.RemoveNode(helper)


def _bounding_box(mask: np.ndarray):
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _sh_item(sh, node):
    """The node's subject hierarchy item; created headless, where no plugin adds it."""
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    return item


def _folder_item(sh, parent, name: str, volume_id: str):
    """The LiverLVT measurements folder of a volume under ``parent`` (made when missing)."""
    import vtk

    children = vtk.vtkIdList()
    sh.GetItemChildren(parent, children)
    for i in range(children.GetNumberOfIds()):
        item = children.GetId(i)
        if (sh.GetItemAttribute(item, ROLE) == "folder"
                and sh.GetItemAttribute(item, VOLUME_ID) == volume_id):
            return item
    folder = sh.CreateFolderItem(parent, name)
    sh.SetItemAttribute(folder, ROLE, "folder")
    sh.SetItemAttribute(folder, VOLUME_ID, volume_id)
    return folder


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def lesion_components(labels: sitk.Image, measurements: dict):
    """[(lesion id, mask)] pairing each analysed lesion with its 26-connected tumor component:
    the one holding the lesion's ``seed_ijk`` voxel when the analysis gives it, else the one
    whose centroid is nearest the lesion's."""
    from scipy import ndimage

    tumor = sitk.GetArrayViewFromImage(labels) == 3
    components, count = ndimage.label(tumor, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return []
    centers_kji = ndimage.center_of_mass(tumor, components, range(1, count + 1))
    ijk_to_ras = mc.ijk_to_ras(labels)
    centers = np.array([(ijk_to_ras @ np.array([c[2], c[1], c[0], 1.0]))[:3]
                        for c in centers_kji])
    free = set(range(count))
    pairs = []
    for lesion in measurements.get("lesions", []) or []:
        seed = lesion.get("seed_ijk")
        if seed is not None and len(seed) == 3:
            i, j, k = (int(v) for v in seed)
            if (0 <= k < components.shape[0] and 0 <= j < components.shape[1]
                    and 0 <= i < components.shape[2] and components[k, j, i] - 1 in free):
                free.discard(components[k, j, i] - 1)
                pairs.append((lesion["id"], components == components[k, j, i]))
                continue
        centroid = lesion.get("centroid_ras")
        if centroid is None or not free:
            continue
        order = sorted(free, key=lambda i: float(np.linalg.norm(centers[i] - np.asarray(centroid))))
        best = order[0]
        free.discard(best)
        pairs.append((lesion["id"], components == best + 1))
    return pairs
