"""One results run of ``segment``, ``analyze`` or ``demo``: everything checked first, then one
result set written into a staging folder and swapped in whole (:func:`core.results.result_folder`).

Order: the input (CT, labels, options, model card, device) and the ``--scene`` path are checked
by the command before :func:`results_run` is entered, so a bad input never creates or touches the
output folder. Inside, every file lands in the staging folder; ``--scene OUT.mrb`` is written to a
temporary file beside ``OUT.mrb`` and moved into place only after the folder was swapped in (a
scene inside the output folder is part of the set). A failure or a cancel before the swap leaves
the old folder and the old scene as they were."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional

from ..core.errors import OutputError
from ..core.files import atomic_path
from ..core.results import result_folder


def check_scene_path(scene) -> Optional[Path]:
    """``--scene`` checked before any work: ends in .mrb, is not a folder, and its folder exists
    (or can be created) and is writable. None without ``--scene``."""
    if not scene:
        return None
    path = Path(scene).absolute()
    if path.suffix.lower() != ".mrb":
        raise OutputError(f"the scene file '{scene}' must end in .mrb", "use --scene NAME.mrb")
    if path.is_dir():
        raise OutputError(f"the scene file '{scene}' is a folder", "give a file name ending in .mrb")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"the scene file '{scene}' cannot be written in '{existing}' "
                          "(not a writable folder)", "choose a writable folder for --scene")
    from ..mrml.headless import import_slicer

    try:
        import_slicer()  # the bundle needs slicer-core: say so now, not after the work
    except ImportError:
        raise OutputError("--scene needs 3D Slicer's MRML libraries, which cannot be imported here",
                          "pip install slicer-core, or drop --scene") from None
    return path


@dataclass
class Run:
    """Where a run writes (``stage``, the staging folder) and where its files end up (``out``)."""

    stage: Path
    out: Path
    scene: Optional[Path] = None  # where to write the scene bundle now (None: no --scene)

    def final(self, path) -> str:
        """The path a staged file will have once the set is swapped in."""
        path = Path(path)
        try:
            return str(self.out / path.relative_to(self.stage))
        except ValueError:
            return str(path)

    def final_paths(self, paths: Dict) -> Dict:
        return {key: ([self.final(p) for p in value] if isinstance(value, list) else self.final(value))
                for key, value in paths.items()}


@contextlib.contextmanager
def results_run(out, scene: Optional[Path] = None) -> Iterator[Run]:
    """A :class:`Run` whose files all land together at the end (or not at all)."""
    out = Path(out).absolute()
    with contextlib.ExitStack() as stack:
        target = None
        if scene is not None and scene.parent == out:
            target = None  # the scene is part of the result set
        elif scene is not None:
            try:
                scene.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create the folder of the scene file '{scene}' "
                                  f"({exc.strerror or exc})", "choose a writable folder for --scene") from None
            target = stack.enter_context(atomic_path(scene))  # committed after the folder swap
        stage = stack.enter_context(result_folder(out))
        run = Run(stage=stage, out=out)
        if scene is not None:
            run.scene = target if target is not None else stage / scene.name
        yield run
