"""The engine off the GUI thread: the device choice (auto/CPU/GPU) and the background job that
runs ``liverlvt segment`` (then ``analyze``) in child processes for the Slicer module, with
progress read from the engine's ``LIVERLVT_PROGRESS`` lines and Cancel by killing the process
group. Plain Python (no MRML, no Qt)."""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import SimpleITK as sitk

from ..core.device import MIN_GPU_GIB, resolve_device
from ..core.errors import Cancelled, LiverLVTError
from ..core.options import AnalysisOptions, SegmentOptions
from ..core.progress import parse_progress_line


# ----------------------------------------------------------------------------- device check
def check_device(choice: str, torch_module=None) -> tuple:
    """(device for the engine, message for the user or "") for the GUI's auto/CPU/GPU choice:
    :func:`LiverLVTLib.core.device.resolve_device` with the module's minimum GPU memory (a GPU
    below it is refused when asked for; Auto falls back to the CPU and says why)."""
    return resolve_device(choice, torch_module, MIN_GPU_GIB)


# ----------------------------------------------------------------------------- background job
PYTHON_SLICER = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"


def python_executable(slicer_home: Optional[str] = None) -> str:
    """The Python that runs the engine in the background: Slicer's ``PythonSlicer`` (in
    ``<slicer_home>/bin``, or on the PATH as inside Slicer), else this Python. The one lookup of
    ``PythonSlicer`` (the module passes ``slicer.app.slicerHome``)."""
    if slicer_home:
        candidate = Path(slicer_home) / "bin" / PYTHON_SLICER
        if candidate.is_file():
            return str(candidate)
    return shutil.which("PythonSlicer") or sys.executable


class SegmentationJob:
    """The engine in child processes: ``segment`` (progress from its ``LIVERLVT_PROGRESS``
    lines), then, when ``analysis`` options are given, ``analyze`` on its labels, so that the
    GUI thread only builds nodes. Poll it from a GUI timer; ``cancel()`` kills the running
    process group; nothing is read back until every step ended successfully."""

    def __init__(self, ct_path, out_dir, device: str = "auto", model_dir=None, tta=None,
                 python: Optional[str] = None, work_dir=None,
                 analysis: Union[None, AnalysisOptions, Dict[str, Any]] = None):
        self.ct_path, self.out_dir = Path(ct_path), Path(out_dir)
        self.device, self.model_dir, self.tta = device, model_dir, tta
        self.analysis = analysis
        self.python = python or python_executable()
        self.work_dir = Path(work_dir) if work_dir else None
        self.process: Optional[subprocess.Popen] = None
        self.stage, self.fraction = "starting", 0.0
        self.cancelled = False
        self._step = 0
        self._lines: "queue.Queue[str]" = queue.Queue()
        self._log: List[str] = []

    @property
    def labels_path(self) -> Path:
        return self.out_dir / "labels.nii.gz"

    @property
    def measurements_path(self) -> Path:
        return self.out_dir / "analysis" / "measurements.json"

    def commands(self) -> List[List[str]]:
        engine = [self.python, "-m", "LiverLVTLib"]
        options = SegmentOptions(model_dir=self.model_dir, device=self.device, tta=self.tta)
        steps = [engine + ["segment", str(self.ct_path), "--out", str(self.out_dir), *options.to_args(),
                           "--no-analysis", "--progress-lines"]]
        if self.analysis is not None:
            steps.append(engine + ["analyze", str(self.ct_path), str(self.labels_path),
                                   "--out", str(self.measurements_path.parent),
                                   *AnalysisOptions.of(self.analysis).to_args(),
                                   "--no-models", "--no-report"])
        return steps

    def start(self) -> None:
        self._start_step(0)

    def _start_step(self, step: int) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        kwargs: Dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:  # pragma: no cover - Windows
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        self._step = step
        if step > 0:
            self.stage, self.fraction = "analysis", 0.0
        self.process = subprocess.Popen(self.commands()[step], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=env, **kwargs)
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process) -> None:
        for line in process.stdout:
            self._lines.put(line.rstrip("\n"))

    def poll(self) -> bool:
        """Drain new output, start the next step when one ends well; True while running."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            parsed = parse_progress_line(line)
            if parsed:
                self.stage, self.fraction = parsed
            else:
                self._log.append(line)
        if self.process is None:
            return False
        code = self.process.poll()
        if code is None:
            return True
        if code == 0 and not self.cancelled and self._step + 1 < len(self.commands()):
            self._start_step(self._step + 1)
            return True
        return False

    @property
    def log(self) -> str:
        return "\n".join(self._log[-40:])

    def cancel(self, grace_s: float = 3.0) -> None:
        """Stop the engine (SIGTERM to its process group, then SIGKILL) and clean up."""
        self.cancelled = True
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGTERM if os.name == "posix" else None)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if os.name == "posix" else None, kill=True)
                self.process.wait(grace_s)
        self.cleanup()

    def _signal(self, sig, kill: bool = False) -> None:
        assert self.process is not None
        try:
            if os.name == "posix":
                os.killpg(self.process.pid, sig)
            elif kill:  # pragma: no cover - Windows
                self.process.kill()
            else:  # pragma: no cover
                self.process.terminate()
        except ProcessLookupError:
            pass

    def wait(self, timeout: Optional[float] = None) -> int:
        """Run every remaining step to its end (blocking); the last exit code."""
        assert self.process is not None
        while True:
            code = self.process.wait(timeout)
            if not self.poll():
                return code

    def labels(self) -> sitk.Image:
        """The finished run's label map; a clear error with the engine's last lines otherwise."""
        from ..core.io import read_labels

        if self.cancelled:
            raise Cancelled()
        code = self.wait()
        if code != 0 or not self.labels_path.is_file():
            raise self._failure(code)
        return read_labels(self.labels_path)

    def _failure(self, code: int) -> LiverLVTError:
        """The engine's own one-line error when it printed one, else its last lines."""
        lines = [line for line in self.log.strip().splitlines() if line.strip()]
        errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
        step = "analysis" if self._step > 0 else "segmentation"
        if errors:
            return LiverLVTError(f"the {step} process failed: {errors[-1]}")
        return LiverLVTError(f"the {step} process failed (exit code {code})",
                             "see its last output: " + " | ".join(lines[-5:] or ["none"]))

    def measurements(self) -> Optional[dict]:
        """measurements.json of the analysis step (None when no analysis was asked)."""
        if self.analysis is None:
            return None
        self.labels()  # raises on failure or cancel
        if not self.measurements_path.is_file():
            raise self._failure(self.process.returncode if self.process else -1)
        return json.loads(self.measurements_path.read_text(encoding="utf-8"))

    def cleanup(self) -> None:
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
