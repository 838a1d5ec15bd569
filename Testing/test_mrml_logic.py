"""The LiverLVT Slicer Logic on real MRML (Kitware's slicer-core wheel), not mocks.

Phantom and a real CT: segmentation with three terminology-tagged, non-empty segments on the
volume's geometry, closed surfaces, table rows = analysis lesions, line lengths = table
diameters (0.1 mm), staging = analysis; edit round trip; cancel leaves the scene unchanged.
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not "
                             "installed: the MRML Logic tests need Slicer's MRML libraries")

from LiverLVTLib.app import selftest as checks  # noqa: E402
from LiverLVTLib.app.background_job import check_device  # noqa: E402
from LiverLVTLib.app.workflow import CaseWorkflow  # noqa: E402
from LiverLVTLib.mrml import convert as mc  # noqa: E402
from LiverLVTLib.mrml.headless import create_headless_slicer  # noqa: E402
from LiverLVTLib.mrml.presentation import staging_summary  # noqa: E402
from LiverLVTLib.mrml.terminology import SEGMENTS  # noqa: E402


def _analyzer():
    """The real analysis stage (no stand-in)."""
    from LiverLVTLib.analysis.measure import analyze_case
    return analyze_case


@pytest.fixture(scope="module")
def phantom():
    from LiverLVTLib.synthetic.phantom import make_small_phantom
    return make_small_phantom(seed=0)


@pytest.fixture()
def app():
    application = create_headless_slicer()
    yield application
    application.clear()


def _apply(app, image, labels, name="CT", **kwargs):
    volume = mc.volume_node_from_image(app.scene, image, name)
    logic = CaseWorkflow.for_scene(app.scene, app.segmentations_logic,
                                   segmenter=lambda ct, **_: labels, analyzer=_analyzer())
    return logic, logic.process(volume, **kwargs)


# ----------------------------------------------------------------------------- conversion
@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, 1, 0, 0, 0, -1),
                                       (0.8, -0.6, 0, 0.6, 0.8, 0, 0, 0, 1)])
def test_volume_node_round_trip_keeps_voxels_and_geometry(app, direction):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-10.0, 20.0, 30.0))
    image.SetDirection(direction)
    node = mc.volume_node_from_image(app.scene, image, "v")
    back = mc.image_from_volume_node(node)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), array)
    assert np.allclose(back.GetSpacing(), image.GetSpacing())
    assert np.allclose(back.GetOrigin(), image.GetOrigin())
    assert np.allclose(back.GetDirection(), image.GetDirection())
    # voxel (i, j, k) lands at the same patient point (LPS in SimpleITK, RAS in MRML)
    ras = mc.ijk_to_ras(image) @ np.array([1, 2, 3, 1.0])
    lps = image.TransformIndexToPhysicalPoint((1, 2, 3))
    assert np.allclose(ras[:3], mc.lps_to_ras_point(lps))


# ----------------------------------------------------------------------------- phantom
def test_phantom_apply_builds_the_surgeons_nodes(app, phantom):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom")
    analysis = _analyzer()(phantom.ct, phantom.labels, n="NX", m="MX")
    checks.check_all(logic.scene_logic, result, phantom.ct, phantom.labels, analysis)
    assert result.table_node.GetName() == "LiverLVT lesions"
    assert len(result.line_nodes) >= 1


def test_terminology_file_matches_the_logic(app):
    """Colours and codes in Resources/Terminology equal the Logic's segment specs."""
    entry = slicer.vtkSlicerTerminologyEntry()
    for spec in SEGMENTS:
        assert app.terminologies_logic.FindTypeInTerminologyBy3dSlicerLabel(
            "Segmentation category and type - LiverLVT", spec.name.lower(), entry)
        assert entry.GetTypeObject().GetCodeValue() == spec.type[1]
        assert entry.GetCategoryObject().GetCodeValue() == spec.category[1]
        assert tuple(entry.GetTypeObject().GetRecommendedDisplayRGBValue()) == spec.color


def test_second_apply_and_recompute_update_in_place(app, phantom):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom")
    count = app.node_count()
    logic.recompute(result.segmentation_node)
    assert app.node_count() == count
    again = logic.apply_labels(result.volume_node, phantom.labels)
    assert app.node_count() == count
    assert again.segmentation_node.GetID() == result.segmentation_node.GetID()


def test_per_lesion_segments(app, phantom):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom", per_lesion_segments=True)
    lesion_ids = logic.scene_logic.lesion_segment_ids(result.segmentation_node)
    assert len(lesion_ids) == len(result.measurements["lesions"])
    tumor = sitk.GetArrayViewFromImage(phantom.labels) == 3
    union = np.zeros_like(tumor)
    for segment_id in lesion_ids:
        union |= logic.scene_logic.segment_array(result.segmentation_node, segment_id, phantom.ct)
    assert np.array_equal(union, tumor)
    # core segments are unchanged by the extra lesion layer
    checks.check_segmentation(logic.scene_logic, result, phantom.ct, phantom.labels)


def test_edit_round_trip_recompute_follows_the_segments(app, phantom):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom")
    n_before = len(result.measurements["lesions"])
    lines_before = len(logic.scene_logic.line_nodes_of(result.volume_node))
    edited = checks.erase_one_lesion(logic.scene_logic, result, phantom.ct, phantom.labels)
    recomputed = logic.recompute(result.segmentation_node)
    want = _analyzer()(phantom.ct, edited, n="NX", m="MX")
    assert len(recomputed.measurements["lesions"]) == n_before - 1
    assert recomputed.table_node.GetNumberOfRows() == n_before - 1
    assert len(logic.scene_logic.line_nodes_of(result.volume_node)) == lines_before - 2
    checks.check_all(logic.scene_logic, recomputed, phantom.ct, edited, want)
    assert (staging_summary(recomputed.measurements)["tumor_burden_percent"]
            < staging_summary(result.measurements)["tumor_burden_percent"])


def test_staging_follows_n_and_m(app, phantom):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom")
    recomputed = logic.recompute(result.segmentation_node, n="N1", m="M0")
    want = _analyzer()(phantom.ct, phantom.labels, n="N1", m="M0")
    checks.check_staging(recomputed, want)
    pytest.importorskip("LiverLVTLib.analysis.staging")
    restaged = logic.restage(result.volume_node, n="N0", m="M1")  # the N/M chooser's path
    want = _analyzer()(phantom.ct, phantom.labels, n="N0", m="M1")
    assert staging_summary(restaged) == staging_summary(want)
    assert staging_summary(logic.scene_logic.measurements_of(result.volume_node)) == staging_summary(want)


def test_cancel_mid_run_leaves_node_count_unchanged(app, phantom):
    volume = mc.volume_node_from_image(app.scene, phantom.ct, "Phantom")
    checks.check_cancel(app.scene, app.segmentations_logic, volume, phantom.labels, _analyzer())


def test_failure_while_building_nodes_rolls_back(app, phantom):
    volume = mc.volume_node_from_image(app.scene, phantom.ct, "Phantom")
    count = app.node_count()
    logic = CaseWorkflow.for_scene(app.scene, app.segmentations_logic,
                                   segmenter=lambda ct, **_: phantom.labels, analyzer=_analyzer())
    broken = dict(_analyzer()(phantom.ct, phantom.labels))
    broken["lesions"] = [{"id": 1, "axial_endpoints_ras": [[[0, 0, 0], [1, 1]]]}]  # bad point
    with pytest.raises(Exception):
        logic.apply_labels(volume, phantom.labels, measurements=broken)
    assert app.node_count() == count


def test_full_scenario_as_the_self_test_runs_it(app):
    checks.run_phantom_scenario(app.scene, app.segmentations_logic, analyzer=_analyzer(),
                                log=lambda *_: None)


def test_model_export_writes_stl_and_obj(app, phantom, tmp_path):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom")
    for fmt in ("STL", "OBJ"):
        files = logic.scene_logic.export_models(result.segmentation_node, tmp_path / fmt, fmt)
        assert files and all(f.stat().st_size > 0 for f in files)
        assert any(f.suffix.lower() == "." + fmt.lower() for f in files)
        assert all(f.parent == tmp_path / fmt for f in files)


def test_model_export_keeps_the_users_files(app, phantom, tmp_path):
    logic, result = _apply(app, phantom.ct, phantom.labels, "Phantom")
    (tmp_path / "my notes.txt").write_text("mine")
    first = logic.scene_logic.export_models(result.segmentation_node, tmp_path, "STL")
    again = logic.scene_logic.export_models(result.segmentation_node, tmp_path, "STL")
    assert first == again and (tmp_path / "my notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["my notes.txt"] + [f.name for f in first])


def test_device_choice_messages():
    class NoGPU:
        class cuda:
            @staticmethod
            def is_available():
                return False

    class SmallGPU:
        class cuda:
            @staticmethod
            def is_available():
                return True

            @staticmethod
            def get_device_properties(_):
                return type("P", (), {"total_memory": 2 * 2 ** 30})()

    assert check_device("cpu", NoGPU) == ("cpu", "")
    device, message = check_device("auto", NoGPU)
    assert device == "cpu" and "No CUDA GPU" in message
    with pytest.raises(Exception, match="no CUDA GPU"):
        check_device("cuda", NoGPU)
    with pytest.raises(Exception, match="2.0 GiB"):
        check_device("cuda", SmallGPU)
    assert check_device("auto", SmallGPU)[0] == "cpu"


# ----------------------------------------------------------------------------- real CT
@pytest.mark.realdata
def test_real_ct_with_reference_labels(app, shared_data, manifest):
    """A real CT (3D-IRCADb, LPS/LAI orientations and 0.57 mm pixels) through the Logic with
    its reference labels standing in for the network."""
    from conftest import case_entry

    from LiverLVTLib.core.io import read_ct, read_labels

    entry = case_entry(manifest, "ircadb-1.1")
    ct = read_ct(shared_data / entry["ct"])
    labels = read_labels(shared_data / entry["labels"], ct)
    logic, result = _apply(app, ct, labels, "ircadb-1.1")
    analysis = _analyzer()(ct, labels, n="NX", m="MX")
    checks.check_all(logic.scene_logic, result, ct, labels, analysis)
    assert result.table_node.GetNumberOfRows() == len(analysis["lesions"]) >= 1


def test_lesion_segments_follow_each_records_own_voxel_not_its_order(app, phantom):
    """The scene logic publishes given labels + measurements (no pipeline), and a lesion's
    segment is the tumor component holding that record's seed voxel: reordering the records or
    dropping one (as an edit does) keeps every segment on its own lesion."""
    from LiverLVTLib.mrml.logic import SceneLogic

    analysis = _analyzer()(phantom.ct, phantom.labels)
    assert len(analysis["lesions"]) >= 2
    shuffled = dict(analysis, lesions=list(reversed(analysis["lesions"]))[:-1])
    scene_logic = SceneLogic(app.scene, app.segmentations_logic)
    volume = mc.volume_node_from_image(app.scene, phantom.ct, "Phantom")
    result = scene_logic.publish(volume, phantom.labels, shuffled, per_lesion_segments=True)
    segmentation = result.segmentation_node.GetSegmentation()
    names = {segmentation.GetSegment(s).GetName(): s
             for s in scene_logic.lesion_segment_ids(result.segmentation_node)}
    assert sorted(names) == sorted(f"Lesion {les['id']}" for les in shuffled["lesions"])
    for lesion in shuffled["lesions"]:
        mask = scene_logic.segment_array(result.segmentation_node, names[f"Lesion {lesion['id']}"],
                                         phantom.ct)
        i, j, k = lesion["seed_ijk"]
        assert mask[k, j, i], f"lesion {lesion['id']}'s segment misses its own seed voxel"
        assert abs(mask.sum() * np.prod(phantom.ct.GetSpacing()) / 1000.0 - lesion["volume_ml"]) < 1e-3 \
            * max(1.0, lesion["volume_ml"]) + 1e-6
