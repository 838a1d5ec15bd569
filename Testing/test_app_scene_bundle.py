"""``--scene OUT.mrb`` bundles (written on slicer-core with the module's Logic) reload with the
same nodes; the engine in a background process reports progress and can be cancelled."""
from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not "
                             "installed: scene bundle tests need Slicer's MRML libraries")

from LiverLVTLib.app.background_job import SegmentationJob  # noqa: E402
from LiverLVTLib.app.scene_bundle import build_scene, write_scene_bundle  # noqa: E402
from LiverLVTLib.app.workflow import CaseWorkflow  # noqa: E402
from LiverLVTLib.cli.arguments import add_scene_argument  # noqa: E402
from LiverLVTLib.mrml import convert as mc  # noqa: E402
from LiverLVTLib.mrml.headless import create_headless_slicer, load_scene_bundle  # noqa: E402

DATA_CLASSES = ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLModelNode",
                "vtkMRMLTableNode", "vtkMRMLMarkupsLineNode", "vtkMRMLTextNode")


def _analyzer():
    """The real analysis stage (no stand-in)."""
    from LiverLVTLib.analysis.measure import analyze_case
    return analyze_case


@pytest.fixture(scope="module")
def phantom():
    from LiverLVTLib.synthetic.phantom import make_small_phantom
    return make_small_phantom(seed=0)


def _data_nodes(scene):
    """{(class, name): node} of the nodes a user sees."""
    found = {}
    for cls in DATA_CLASSES:
        nodes = scene.GetNodesByClass(cls)
        for i in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(i)
            if node.GetClassName() == cls:
                found[(cls, node.GetName())] = node
    return found


def test_scene_bundle_reloads_with_the_same_nodes(phantom, tmp_path):
    result = _analyzer()(phantom.ct, phantom.labels)
    built, _ = build_scene(phantom.ct, phantom.labels, result, "Phantom CT")
    expected = _data_nodes(built.scene)
    path = write_scene_bundle(phantom.ct, phantom.labels, result, tmp_path / "case.mrb",
                              ct_name="Phantom CT")
    assert path.is_file() and path.stat().st_size > 0
    app = load_scene_bundle(path, tmp_path / "unpacked")
    loaded = _data_nodes(app.scene)
    assert sorted(loaded) == sorted(expected)
    n_lesions = len(result["lesions"])
    counts = {cls: sum(1 for c, _ in loaded if c == cls) for cls in DATA_CLASSES}
    assert counts["vtkMRMLScalarVolumeNode"] == 1
    assert counts["vtkMRMLSegmentationNode"] == 1
    assert counts["vtkMRMLModelNode"] == 3
    assert counts["vtkMRMLTableNode"] == 1
    assert counts["vtkMRMLMarkupsLineNode"] == 2 * n_lesions

    # voxels, segments and measurements survived the round trip
    volume = loaded[("vtkMRMLScalarVolumeNode", "Phantom CT")]
    ct = mc.image_from_volume_node(volume, sitk.sitkFloat32)
    assert np.allclose(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(phantom.ct))
    assert np.allclose(ct.GetDirection(), phantom.ct.GetDirection())
    seg = loaded[("vtkMRMLSegmentationNode", "Phantom CT LVT")]
    logic = CaseWorkflow.for_scene(app.scene, app.segmentations_logic, analyzer=_analyzer())
    assert logic.scene_logic.volume_of(seg).GetID() == volume.GetID()
    back = logic.scene_logic.labels_from_segmentation(seg, ct)
    assert np.array_equal(sitk.GetArrayViewFromImage(back),
                          sitk.GetArrayViewFromImage(phantom.labels))
    for i in range(3):
        assert "SCT^" in seg.GetSegmentation().GetNthSegment(i).GetTerminology()
    table = loaded[("vtkMRMLTableNode", "LiverLVT lesions")]
    assert table.GetNumberOfRows() == n_lesions
    for lesion in result["lesions"]:
        line = loaded[("vtkMRMLMarkupsLineNode", f"Lesion {lesion['id']} longest axial")]
        assert abs(line.GetLineLengthWorld() - lesion["longest_axial_mm"]) < 0.1
    assert logic.scene_logic.measurements_of(volume)["lesions"][0]["id"] == result["lesions"][0]["id"]
    # the module finds its nodes again in the reloaded scene: Recompute works on it
    again = logic.recompute(seg)
    assert again.table_node.GetID() == table.GetID()
    # hierarchy: segmentation beside the volume
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(app.scene)
    assert sh.GetItemParent(sh.GetItemByDataNode(seg)) == sh.GetItemParent(
        sh.GetItemByDataNode(volume))


def test_scene_path_must_be_mrb(phantom, tmp_path):
    from LiverLVTLib.core.errors import OutputError

    with pytest.raises(OutputError, match=".mrb"):
        write_scene_bundle(phantom.ct, phantom.labels, {"lesions": []}, tmp_path / "x.zip")


def test_add_scene_argument():
    import argparse

    parser = argparse.ArgumentParser()
    add_scene_argument(parser)
    assert parser.parse_args(["--scene", "a.mrb"]).scene == "a.mrb"
    assert parser.parse_args([]).scene is None


# ----------------------------------------------------------------------------- background
def _write_ct(image, folder):
    from LiverLVTLib.core.io import write_image

    return write_image(image, folder / "ct.nrrd", compress=False)


def test_background_job_runs_the_engine_and_applies(phantom, tiny_model_dir, tmp_path):
    pytest.importorskip("LiverLVTLib.segmentation.pipeline")
    app = create_headless_slicer()
    volume = mc.volume_node_from_image(app.scene, phantom.ct, "Phantom")
    job = SegmentationJob(_write_ct(phantom.ct, tmp_path), tmp_path / "out", device="cpu",
                          model_dir=tiny_model_dir,
                          analysis={"n": "N0", "m": "M0", "cyst_rule": "acr",
                                    "major_vessel_mm": 5.0})
    job.start()
    stages = set()
    deadline = time.time() + 240
    while job.poll():
        stages.add(job.stage)
        assert time.time() < deadline, "the engine did not finish in 240 s"
        time.sleep(0.1)
    stages.add(job.stage)
    labels = job.labels()
    assert labels.GetSize() == phantom.ct.GetSize()
    assert stages - {"starting"}, f"no progress line was read ({job.log})"
    logic = CaseWorkflow.for_scene(app.scene, app.segmentations_logic, analyzer=_analyzer())
    if not (sitk.GetArrayViewFromImage(labels) == 1).any():  # random weights found no liver:
        return  # the analysis step then refuses the labels, which is right
    measurements = job.measurements()
    assert measurements["staging"]["ajcc8"]["N"] == "N0"
    result = logic.apply_labels(volume, labels, measurements=measurements)
    assert result.segmentation_node.GetSegmentation().GetNumberOfSegments() == 3
    assert result.table_node.GetNumberOfRows() == len(measurements["lesions"])


def test_background_cancel_kills_the_engine_and_leaves_the_scene(phantom, tiny_model_dir,
                                                                  tmp_path):
    pytest.importorskip("LiverLVTLib.segmentation.pipeline")
    from LiverLVTLib.core.errors import Cancelled
    from LiverLVTLib.synthetic.phantom import make_phantom

    app = create_headless_slicer()
    big = make_phantom(seed=1)  # large enough that the engine is still running when cancelled
    volume = mc.volume_node_from_image(app.scene, big.ct, "Phantom")
    count = app.node_count()
    logic = CaseWorkflow.for_scene(app.scene, app.segmentations_logic, analyzer=_analyzer())
    job = logic.start_background(volume, model_dir=tiny_model_dir, device="cpu")
    deadline = time.time() + 120
    while job.poll() and job.stage == "starting":
        assert time.time() < deadline, f"no progress within 120 s ({job.log})"
        time.sleep(0.05)
    assert job.process.poll() is None, f"the engine ended before it could be cancelled ({job.log})"
    job.cancel()
    assert job.process.poll() is not None  # the process is gone
    with pytest.raises(Cancelled):
        job.labels()
    assert app.node_count() == count
    assert not job.work_dir.exists()  # temporary CT removed
