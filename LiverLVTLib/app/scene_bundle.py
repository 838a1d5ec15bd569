"""A Slicer scene bundle (``liverlvt ... --scene OUT.mrb``) built by the same Logic as the Slicer module.

The bundle holds the CT volume, the "<CT> LVT" segmentation (terminology, colours, closed
surfaces), one model node per segment, the "LiverLVT lesions" table, the diameter lines and the
measurements text, arranged in the subject hierarchy as the module leaves them. It is written
with Slicer's own scene writer (``SaveSceneToSlicerDataBundleDirectory`` + ``Zip``) on the
``slicer-core`` wheel, so desktop Slicer opens it with File / Open.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from ..core.errors import OutputError


def build_scene(ct: sitk.Image, labels: sitk.Image, result: dict, ct_name: str = "CT",
                models: bool = True):
    """A headless application whose scene holds what the module would have made (published by
    the module's own scene logic: the labels and measurements are given, nothing is run)."""
    from ..core.io import as_labels
    from ..mrml import convert as mc
    from ..mrml.headless import create_headless_slicer
    from ..mrml.logic import SceneLogic

    app = create_headless_slicer()
    volume = mc.volume_node_from_image(app.scene, ct, ct_name)
    logic = SceneLogic(app.scene, app.segmentations_logic)
    lvt = logic.publish(volume, as_labels(labels, ct), result, ct=ct)
    if models:
        logic.add_model_nodes(lvt.segmentation_node)
    return app, lvt


def write_scene_bundle(ct: sitk.Image, labels: sitk.Image, result: dict, path,
                       ct_name: str = "CT", models: bool = True, name: Optional[str] = None) -> Path:
    """Write ``path`` (.mrb) atomically; returns the path. ``name``: the bundle's scene name
    (default: the file's stem; give the final one when ``path`` is a temporary file)."""
    from ..core.io import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".mrb":
        raise OutputError(f"the scene file '{path}' must end in .mrb", "use --scene NAME.mrb")
    path.parent.mkdir(parents=True, exist_ok=True)
    app, _ = build_scene(ct, labels, result, ct_name, models)
    work = Path(tempfile.mkdtemp(prefix="liverlvt-mrb-"))
    try:
        name = name or path.stem
        bundle = work / name  # Slicer's .mrb: one top folder holding <name>.mrml + Data/
        bundle.mkdir()
        app.scene.SetURL(str(bundle / f"{name}.mrml"))
        if not app.app_logic.SaveSceneToSlicerDataBundleDirectory(str(bundle), None):
            raise OutputError(f"Slicer could not write the scene into '{bundle}'",
                              "check free disk space in the temporary folder")
        with atomic_path(path) as tmp:
            tmp.unlink()
            if not app.app_logic.Zip(str(tmp), str(bundle)):
                raise OutputError(f"the scene bundle '{path}' could not be zipped",
                                  "choose a writable folder for --scene")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        app.clear()
    return path
