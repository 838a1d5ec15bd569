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

from ..core.errors import Cancelled, OutputError
from ..core.files import atomic_path
from ..core.results import check_inputs_outside, result_folder


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


def _inside(path: Optional[Path], folder: Path) -> Optional[Path]:
    """``path`` relative to ``folder`` when it lies inside it, else None."""
    if path is None:
        return None
    try:
        return path.relative_to(folder)
    except ValueError:
        return None


@contextlib.contextmanager
def results_run(out, scene: Optional[Path] = None, inputs=()) -> Iterator[Run]:
    """A :class:`Run` whose files all land together at the end (or not at all); ``inputs`` (the
    paths the run read) must lie outside ``out``."""
    out = Path(out).absolute()
    check_inputs_outside(out, inputs)
    try:
        with contextlib.ExitStack() as stack:
            inside = _inside(scene, out)  # a scene inside the output folder is part of the set
            target = None
            if scene is not None and inside is None:
                try:
                    scene.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise OutputError(f"cannot create the folder of the scene file '{scene}' "
                                      f"({exc.strerror or exc})", "choose a writable folder for --scene") from None
                target = stack.enter_context(atomic_path(scene))  # moved into place after the swap
            stage = stack.enter_context(result_folder(out, inputs))  # exits first: the swap
            run = Run(stage=stage, out=out)
            if inside is not None:
                run.scene = stage / inside
                run.scene.parent.mkdir(parents=True, exist_ok=True)
            else:
                run.scene = target
            yield run
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (result_folder turns it into one)
        raise Cancelled(f"cancelled; nothing of the new results was written, '{out}' holds "
                        "what it held before") from None


@contextlib.contextmanager
def after_landing(run: Run) -> Iterator[None]:
    """Around what a command does once its results are in place (the summary): an interrupt
    there says the results were written."""
    try:
        yield
    except KeyboardInterrupt:
        raise Cancelled(f"interrupted after the new results were written to '{run.out}'") from None
