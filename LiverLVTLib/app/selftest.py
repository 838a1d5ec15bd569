"""Checks of what the LiverLVT Logic leaves in a scene, shared by the pytest suite (on the
``slicer-core`` wheel) and the module's self-test ``LiverLVTTest.runTest()`` (in desktop Slicer),
so both assert the same things. MRML/VTK only; no network, no GPU (the phantom's exact labels
stand in for the network, the real analysis measures them).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk

from ..analysis.lesions import full_mask
from ..core.errors import Cancelled
from ..core.progress import CancelToken
from ..mrml import convert as mc
from ..mrml.logic import SceneLogic
from ..mrml.presentation import TABLE_COLUMNS, lookup, staging_summary, staging_text
from ..mrml.terminology import SEGMENTS
from .workflow import CaseWorkflow, engine_analyzer

LINE_TOLERANCE_MM = 0.1


def _fail(message: str):
    raise AssertionError(message)


def lesion_full_masks(labels: sitk.Image, measurements: dict) -> dict:
    """{lesion id as text: boolean [k, j, i] mask on ``labels``' grid} of the analysed lesions."""
    shape = sitk.GetArrayViewFromImage(labels).shape
    return {str(lesion_id): full_mask(shape, box, crop)
            for lesion_id, (box, crop) in SceneLogic.lesion_masks(labels, measurements).items()}


def check_segmentation(logic: SceneLogic, result, ct: sitk.Image, labels: sitk.Image) -> None:
    """Three tagged, terminology-coded, non-empty segments on the volume's geometry, equal to the
    label map voxel for voxel, with closed surfaces, beside the volume in the hierarchy."""
    import slicer
    import vtk

    seg_node, volume = result.segmentation_node, result.volume_node
    if seg_node.GetName() != f"{volume.GetName()} LVT":
        _fail(f"segmentation is named '{seg_node.GetName()}'")
    reference = logic.volume_of(seg_node)
    if reference is None or reference.GetID() != volume.GetID():
        _fail("the segmentation's reference geometry is not the CT volume")
    truth = sitk.GetArrayViewFromImage(labels)
    for spec in SEGMENTS:
        segment_id = logic.core_segment_id(seg_node, spec.label)
        if not segment_id:
            _fail(f"segment '{spec.name}' is missing")
        segment = seg_node.GetSegmentation().GetSegment(segment_id)
        terminology = segment.GetTerminology()
        for code in (spec.category, spec.type) + ((spec.region,) if spec.region else ()):
            if "^".join(code) not in terminology:
                _fail(f"segment '{spec.name}' lacks SNOMED code {code} in '{terminology}'")
        mask = logic.segment_array(seg_node, segment_id, ct)
        if not mask.any() and (truth == spec.label).any():
            _fail(f"segment '{spec.name}' is empty")
        if not np.array_equal(mask, truth == spec.label):
            _fail(f"segment '{spec.name}' differs from label {spec.label} "
                  f"({int((mask != (truth == spec.label)).sum())} voxels)")
        surface = vtk.vtkPolyData()
        seg_node.GetClosedSurfaceRepresentation(segment_id, surface)
        if mask.any() and surface.GetNumberOfPoints() == 0:
            _fail(f"segment '{spec.name}' has no closed surface")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(logic.scene)
    if sh.GetItemParent(sh.GetItemByDataNode(seg_node)) != sh.GetItemParent(
            sh.GetItemByDataNode(volume)):
        _fail("the segmentation is not beside its volume in the subject hierarchy")


def check_table(result, measurements: dict) -> None:
    table = result.table_node
    lesions = measurements.get("lesions", []) or []
    if table.GetNumberOfRows() != len(lesions):
        _fail(f"table has {table.GetNumberOfRows()} rows for {len(lesions)} lesions")
    for row, lesion in enumerate(lesions):
        for col, (title, key, kind) in enumerate(TABLE_COLUMNS):
            cell = table.GetCellText(row, col)
            want = lookup(lesion, key)
            if kind == "d":
                want_f = float("nan") if want is None else float(want)
                got = float(cell) if cell not in ("", "nan") else float("nan")
                if not (np.isnan(want_f) and np.isnan(got)) and abs(got - want_f) > 1e-3 * max(
                        1.0, abs(want_f)):
                    _fail(f"table row {row} '{title}' is {cell}, analysis says {want}")
            elif key == "id" and cell != str(want):
                _fail(f"table row {row} lesion id {cell} != {want}")


def check_lines(logic: SceneLogic, result, ct: sitk.Image, labels: sitk.Image,
                measurements: dict) -> None:
    """Two lines per lesion, lengths equal to the table's diameters, lying on the lesion's
    largest axial slice."""
    table = result.table_node
    long_col = [t for t, _, _ in TABLE_COLUMNS].index("Longest axial (mm)")
    short_col = [t for t, _, _ in TABLE_COLUMNS].index("Short axis (mm)")
    components = lesion_full_masks(labels, measurements)
    lesions = measurements.get("lesions", []) or []
    expected = sum(1 for lesion in lesions if lesion.get("axial_endpoints_ras"))
    if len(result.line_nodes) != expected:
        _fail(f"{len(result.line_nodes)} lesions have lines, {expected} expected")
    if len(logic.line_nodes_of(result.volume_node)) != 2 * expected:
        _fail("stale or missing diameter lines in the scene")
    for row, lesion in enumerate(lesions):
        pair = result.line_nodes.get(str(lesion["id"]))
        if not pair:
            continue
        if len(pair) != 2:
            _fail(f"lesion {lesion['id']} has {len(pair)} lines, not 2")
        for line, col in zip(pair, (long_col, short_col)):
            want = float(table.GetCellText(row, col))
            got = line.GetLineLengthWorld()
            if abs(got - want) > LINE_TOLERANCE_MM:
                _fail(f"line '{line.GetName()}' is {got:.2f} mm, table says {want:.2f} mm")
        _check_axial_plane(pair, lesion, components.get(str(lesion["id"])), ct)


def _check_axial_plane(pair, lesion: dict, mask, ct: sitk.Image) -> None:
    """Both lines lie in one axial plane (constant S) that is the analysis's measurement slice
    (the lesion's largest axial extent, RECIST) and cuts the lesion; on an axis-aligned CT that
    plane is one of the CT's own slices."""
    points = []
    for line in pair:
        for i in range(2):
            position = [0.0, 0.0, 0.0]
            line.GetNthControlPointPosition(i, position)
            points.append(position)
    points = np.array(points)
    s_values = points[:, 2]
    if np.ptp(s_values) > 0.01:
        _fail(f"lesion {lesion['id']}'s lines are not in one axial plane (S {s_values})")
    if lesion.get("axial_slice_s_mm") is not None and abs(
            s_values[0] - float(lesion["axial_slice_s_mm"])) > 0.01:
        _fail(f"lesion {lesion['id']}'s lines are at S {s_values[0]:.2f}, the analysis measured "
              f"at {lesion['axial_slice_s_mm']}")
    slice_axis = np.abs(mc.ijk_to_ras(ct)[2, :3])
    if mask is None or np.count_nonzero(slice_axis > 1e-6) != 1:
        return  # oblique CT: the axial plane is not one of its slices
    ras_to_ijk = mc.ras_to_ijk(ct)
    index = (ras_to_ijk @ np.append(points[0], 1.0))[:3]
    axis = int(np.argmax(slice_axis))  # i, j or k: the CT axis along S
    k = index[axis]
    if abs(k - round(k)) > 0.05:
        _fail(f"lesion {lesion['id']}'s lines fall between CT slices (index {k:.2f})")
    plane = np.take(mask, int(round(k)), axis=2 - axis)
    if not plane.any():
        _fail(f"lesion {lesion['id']}'s lines lie on a slice without the lesion")


def check_staging(result, measurements: dict) -> None:
    got, want = staging_summary(result.measurements), staging_summary(measurements)
    for key in ("paper_stage", "T", "N", "M", "stage_group", "paper_rationale", "ajcc_rationale",
                "n_lesions"):
        if got[key] != want[key]:
            _fail(f"staging '{key}' is {got[key]!r}, analysis says {want[key]!r}")
    for key in ("liver_volume_ml", "tumor_burden_percent"):
        if not np.isclose(got[key], want[key], equal_nan=True):
            _fail(f"'{key}' is {got[key]}, analysis says {want[key]}")


def check_all(logic, result, ct, labels, measurements) -> None:
    check_segmentation(logic, result, ct, labels)
    check_table(result, measurements)
    check_lines(logic, result, ct, labels, measurements)
    check_staging(result, measurements)


# ----------------------------------------------------------------------------- scenarios
def erase_one_lesion(logic: SceneLogic, result, ct: sitk.Image, labels: sitk.Image):
    """Erase the first analysed lesion from the Liver tumor segment (a Segment Editor edit);
    returns the edited label map."""
    components = lesion_full_masks(labels, result.measurements)
    first = str((result.measurements.get("lesions") or [{}])[0].get("id"))
    if first not in components:
        _fail("no lesion to erase")
    mask = components[first]
    tumor_id = logic.core_segment_id(result.segmentation_node, 3)
    tumor = logic.segment_array(result.segmentation_node, tumor_id, ct)
    logic.set_segment_array(result.segmentation_node, tumor_id, tumor & ~mask, ct)
    edited = sitk.GetArrayFromImage(labels)
    edited[mask] = 0
    image = sitk.GetImageFromArray(edited)
    image.CopyInformation(labels)
    return image


def check_cancel(scene, segmentations_logic, volume_node, labels, analyzer) -> None:
    """Cancel while the segmenter runs: the scene keeps exactly its nodes."""
    before = [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]

    def segmenter(ct, progress=None, cancel=None, **_):
        progress("inference", 0.5)
        cancel.cancel()  # the user presses Cancel mid-run
        cancel.check()
        return labels

    workflow = CaseWorkflow.for_scene(scene, segmentations_logic, segmenter=segmenter,
                                      analyzer=analyzer)
    try:
        workflow.process(volume_node, progress=lambda *_: None, cancel=CancelToken())
    except Cancelled:
        pass
    else:
        _fail("process() did not raise Cancelled")
    after = [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]
    if after != before:
        _fail(f"cancel changed the scene: {len(before)} -> {len(after)} nodes")


def run_phantom_scenario(scene, segmentations_logic=None, analyzer: Optional[Callable] = None,
                         log: Callable[[str], None] = print, phantom=None) -> dict:
    """Phantom -> workflow -> checks; edit round trip -> checks; cancel -> unchanged scene."""
    from ..synthetic.phantom import make_small_phantom

    analyzer = analyzer or engine_analyzer
    ph = phantom or make_small_phantom(seed=0)
    volume = mc.volume_node_from_image(scene, ph.ct, "LiverLVT phantom")
    workflow = CaseWorkflow.for_scene(scene, segmentations_logic,
                                      segmenter=lambda ct, **_: ph.labels, analyzer=analyzer)
    logic = workflow.scene_logic
    log("Apply on the phantom")
    result = workflow.process(volume)
    want = analyzer(ph.ct, ph.labels)
    check_all(logic, result, ph.ct, ph.labels, want)
    log(staging_text(result.measurements))

    log("Edit round trip: erase one tumor, Recompute")
    edited = erase_one_lesion(logic, result, ph.ct, ph.labels)
    n_before = len(result.measurements["lesions"])
    recomputed = workflow.recompute(result.segmentation_node)
    want_edited = analyzer(ph.ct, edited)
    if len(recomputed.measurements["lesions"]) != n_before - 1:
        _fail(f"after erasing a tumor the table has {len(recomputed.measurements['lesions'])} "
              f"lesions, expected {n_before - 1}")
    check_all(logic, recomputed, ph.ct, edited, want_edited)
    log(staging_text(recomputed.measurements))

    log("Cancel mid-run leaves the scene unchanged")
    check_cancel(scene, segmentations_logic, volume, ph.labels, analyzer)
    return {"result": recomputed, "before_edit": want, "after_edit": want_edited}
