"""LiverLVT's scene logic: a label map + the analysis's measurements dict -> MRML nodes a
surgeon reads, and edited segments -> a label map again. MRML/VTK only: it runs no segmentation
or analysis (``LiverLVTLib.app.workflow`` joins those to it), imports no ``qt``/``ctk``, so the
same code runs inside desktop Slicer and on the ``slicer-core`` wheel (tests, ``--scene``).

What :meth:`SceneLogic.publish` leaves in the scene for a volume "<v>":
  * segmentation "<v> LVT" beside the volume in the subject hierarchy: segments Liver, Hepatic
    vessels, Liver tumor (+ one per lesion when asked), SNOMED-CT terminology and colors,
    reference geometry from the volume (DICOM SEG export), closed surfaces made by Slicer's
    converter;
  * folder "<v> LVT measurements" with the table "LiverLVT lesions", two line markups per lesion
    (longest axial diameter and its perpendicular) and a text node with measurements.json.
Nodes are found again by attributes (``LiverLVT.*``), so Recompute and a second Apply update them
in place instead of piling up copies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..core.errors import LiverLVTError, OutputError
from . import convert as mc
from .nodes import (
    AXIS_ATTRIBUTE,
    LABEL_TAG,
    LESION_TAG,
    ROLE,
    VOLUME_ID,
    SceneTransaction,
    bounding_box,
    folder_item,
    json_default,
    nodes_of_class,
    remove_node,
    segment_tag,
    sh_item,
)
from .presentation import TABLE_COLUMNS, TABLE_NAME, as_float, as_text, lookup, staging_summary
from .terminology import LESION_COLOR, LONG_AXIS_COLOR, SEGMENTS, SHORT_AXIS_COLOR, TUMOR_SPEC

LesionMasks = Dict[int, Tuple[Tuple[slice, slice, slice], np.ndarray]]


@dataclass
class LVTResult:
    """What one Apply / Recompute left in the scene."""

    volume_node: Any
    segmentation_node: Any
    table_node: Any
    text_node: Any
    line_nodes: Dict[str, List[Any]] = field(default_factory=dict)  # lesion id -> [long, short]
    measurements: Dict[str, Any] = field(default_factory=dict)

    @property
    def staging(self) -> Dict[str, Any]:
        return staging_summary(self.measurements)


def _lesion_masks(labels: sitk.Image, measurements: dict) -> LesionMasks:
    """Lesion id -> (box, crop mask) from each lesion record's own seed voxel: the one place the
    scene logic (and the self-test) finds a lesion's voxels (the analysis's lesion identity).
    Imported here: the analysis needs cc3d/contourpy, which Slicer may not have installed yet
    when the module starts."""
    from ..analysis.lesions import lesion_masks

    return lesion_masks(sitk.GetArrayViewFromImage(labels),
                        list(measurements.get("lesions", []) or []))


class SceneLogic:
    """MRML side of LiverLVT. ``scene`` is ``slicer.mrmlScene`` in Slicer or the headless
    scene from :func:`LiverLVTLib.mrml.headless.create_headless_slicer`."""

    def __init__(self, scene, segmentations_logic=None):
        self.scene = scene
        self.segmentations_logic = segmentations_logic

    # ------------------------------------------------------------------ publish
    def ct_of(self, volume_node) -> sitk.Image:
        """The volume's voxels as a float32 SimpleITK image (LPS geometry, no resampling)."""
        return mc.image_from_volume_node(volume_node, sitk.sitkFloat32)

    def publish(self, volume_node, labels: sitk.Image, measurements: dict,
                per_lesion_segments: Optional[bool] = False, ct: Optional[sitk.Image] = None,
                segmentation_node=None) -> LVTResult:
        """Build (or update in place) every LiverLVT node of ``volume_node``. With
        ``segmentation_node`` (Recompute) its core segments are kept as the user edited them;
        without, they are (re)written from ``labels``. ``per_lesion_segments=None`` keeps the
        segmentation's current choice. An error leaves the scene as it was."""
        ct = ct if ct is not None else self.ct_of(volume_node)
        if per_lesion_segments is None:
            per_lesion_segments = bool(segmentation_node is not None
                                       and self.lesion_segment_ids(segmentation_node))
        with SceneTransaction(self.scene):
            if segmentation_node is None:
                segmentation_node = self._segmentation_node(volume_node)
                self._fill_core_segments(segmentation_node, labels)
            self._set_lesion_segments(segmentation_node, labels, measurements,
                                      per_lesion_segments)
            segmentation_node.CreateClosedSurfaceRepresentation()  # Slicer's converter
            table = self._lesion_table(volume_node, measurements)
            lines = self._diameter_lines(volume_node, measurements)
            text = self.set_measurements(volume_node, measurements)
            self._arrange_hierarchy(volume_node, segmentation_node, [table, text]
                                    + [node for pair in lines.values() for node in pair])
        return LVTResult(volume_node, segmentation_node, table, text, lines, measurements)

    def set_measurements(self, volume_node, measurements: dict):
        """Store measurements.json in the volume's text node (made when missing)."""
        text = self._find_output(volume_node, "measurements", "vtkMRMLTextNode")
        if text is None:
            text = self._new_output(volume_node, "measurements", "vtkMRMLTextNode",
                                    f"{volume_node.GetName()} LVT measurements.json")
        text.SetText(json.dumps(measurements, indent=1, default=json_default))
        return text

    # ------------------------------------------------------------------ finding nodes
    def _find_output(self, volume_node, role: str, node_class: str):
        for node in nodes_of_class(self.scene, node_class):
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

    def line_nodes_of(self, volume_node) -> List[Any]:
        return [node for node in nodes_of_class(self.scene, "vtkMRMLMarkupsLineNode")
                if node.GetAttribute(ROLE) == "diameter"
                and node.GetAttribute(VOLUME_ID) == volume_node.GetID()]

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
        box = bounding_box(array > 0) or (slice(0, 1),) * 3
        shared = mc.oriented_image_from_array(np.asarray(array[box], np.uint8), labels,
                                              [s.start for s in box])
        binary = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        segmentation = segmentation_node.GetSegmentation()
        segmentation.SetSourceRepresentationName(binary)
        for spec in SEGMENTS:
            old = self.core_segment_id(segmentation_node, spec.label)
            if old:
                segmentation.RemoveSegment(old)
        for spec in SEGMENTS:
            segment = slicer.vtkSegment()
            segment.SetName(spec.name)
            segment.SetColor(*spec.color_float)
            segment.SetTerminology(spec.terminology)
            segment.SetTag(LABEL_TAG, str(spec.label))
            segment.SetLabelValue(spec.label)
            segment.AddRepresentation(binary, shared)
            segmentation.AddSegment(segment, f"LiverLVT_{spec.label}")

    @staticmethod
    def core_segment_id(segmentation_node, label: int) -> Optional[str]:
        """The segment holding engine label ``label`` (found by tag: renaming is fine)."""
        segmentation = segmentation_node.GetSegmentation()
        for i in range(segmentation.GetNumberOfSegments()):
            if segment_tag(segmentation.GetNthSegment(i), LABEL_TAG) == str(label):
                return segmentation.GetNthSegmentID(i)
        return None

    @staticmethod
    def lesion_segment_ids(segmentation_node) -> List[str]:
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
            segment_id = self.core_segment_id(segmentation_node, spec.label)
            if segment_id:
                out[self.segment_array(segmentation_node, segment_id, reference)] = spec.label
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(reference)
        return image

    @staticmethod
    def lesion_masks(labels: sitk.Image, measurements: dict) -> LesionMasks:
        """Lesion id -> (box, crop mask) of each analysed lesion in ``labels``."""
        return _lesion_masks(labels, measurements)

    def _set_lesion_segments(self, segmentation_node, labels, measurements,
                             wanted: bool) -> None:
        """One segment per lesion ("Lesion <id>", separate layer) when asked; removed when not."""
        segmentation = segmentation_node.GetSegmentation()
        for segment_id in self.lesion_segment_ids(segmentation_node):
            segmentation.RemoveSegment(segment_id)
        if not wanted:
            return
        for lesion_id, (box, crop) in _lesion_masks(labels, measurements).items():
            oriented = mc.oriented_image_from_array(crop.astype(np.uint8), labels,
                                                    [s.start for s in box])
            segment_id = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(
                oriented, f"Lesion {lesion_id}", [c / 255.0 for c in LESION_COLOR])
            segment = segmentation.GetSegment(segment_id)
            segment.SetTerminology(TUMOR_SPEC.terminology)
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
            convert = as_text if kind == "s" else as_float
            for lesion in lesions:
                column.InsertNextValue(convert(lookup(lesion, key)))
            vtk_table.AddColumn(column)
        table.SetAndObserveTable(vtk_table)
        table.SetLocked(True)  # values come from the analysis; edits go through Recompute
        return table

    # ------------------------------------------------------------------ diameter lines
    def _diameter_lines(self, volume_node, measurements: dict) -> Dict[str, List[Any]]:
        for node in self.line_nodes_of(volume_node):
            remove_node(self.scene, node)
        lines: Dict[str, List[Any]] = {}
        for lesion in measurements.get("lesions", []) or []:
            endpoints = lesion.get("axial_endpoints_ras") or []
            pair = [self._line(volume_node, lesion["id"], axis, points)
                    for axis, points in zip(("longest axial", "short axis"), endpoints)
                    if points is not None and len(points) == 2]
            if pair:
                lines[str(lesion["id"])] = pair
        return lines

    def _line(self, volume_node, lesion_id, axis: str, points):
        import vtk

        line = self._new_output(volume_node, "diameter", "vtkMRMLMarkupsLineNode",
                                f"Lesion {lesion_id} {axis}")
        longest = axis.startswith("longest")
        line.SetAttribute(LESION_TAG, str(lesion_id))
        line.SetAttribute(AXIS_ATTRIBUTE, "long" if longest else "short")
        line.CreateDefaultDisplayNodes()
        for point in points:
            line.AddControlPoint(vtk.vtkVector3d(*[float(v) for v in point]))
        line.SetLocked(True)
        display = line.GetDisplayNode()
        if display is not None:
            display.SetSelectedColor(*(LONG_AXIS_COLOR if longest else SHORT_AXIS_COLOR))
        return line

    # ------------------------------------------------------------------ hierarchy
    def _arrange_hierarchy(self, volume_node, segmentation_node, measurement_nodes) -> None:
        """Segmentation beside its volume; table, lines and text in a folder beside it too."""
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        parent = sh.GetItemParent(sh_item(sh, volume_node))
        sh.SetItemParent(sh_item(sh, segmentation_node), parent)
        folder = folder_item(sh, parent, f"{volume_node.GetName()} LVT measurements",
                             volume_node.GetID())
        for node in measurement_nodes:
            sh.SetItemParent(sh_item(sh, node), folder)

    # ------------------------------------------------------------------ models
    def export_models(self, segmentation_node, folder, file_format: str = "STL") -> List[Path]:
        """Closed surfaces to STL/OBJ files (LPS, like Slicer's Export to files) in ``folder``,
        a folder the user picked: the files are exported into a hidden staging folder inside it
        and moved into place one rename each once all are written (a failure leaves the folder
        as it was; no other file is touched). Returns the exported files' paths."""
        import slicer

        from ..core.results import staged_files

        folder = Path(folder).absolute()
        with staged_files(folder) as stage:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsClosedSurfaceRepresentationToFiles(
                str(stage), segmentation_node, None, file_format.upper(), True, 1.0, False)
            names = sorted(p.name for p in stage.iterdir())
            if not ok or not names or any((stage / n).stat().st_size == 0 for n in names):
                raise OutputError(f"the segments could not be exported as {file_format} into '{folder}'",
                                  "check that the folder is writable and the disk has free space")
        return [folder / name for name in names]

    def add_model_nodes(self, segmentation_node):
        """One model node per segment in a "<segmentation> models" folder (for scene bundles)."""
        import slicer

        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        parent = sh.GetItemParent(sh_item(sh, segmentation_node))
        folder = sh.CreateFolderItem(parent, f"{segmentation_node.GetName()} models")
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToModels(
                segmentation_node, folder):
            raise LiverLVTError("the segments could not be converted to model nodes")
        return folder
