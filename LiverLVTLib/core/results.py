"""A results folder that holds the old complete set or the new complete set, never a mix.

A run writes everything into a hidden staging sibling (``.NAME.liverlvt-new-PID``) and, only once
every file is written, swaps it in for ``NAME`` (one ``renameat2(RENAME_EXCHANGE)`` on Linux, two
renames elsewhere), then deletes the old set — so files of the old set that the new run does not
make are gone, and a failure anywhere (disk full, permission, Ctrl-C, SIGTERM) leaves the old set
untouched and the staging folder removed. ``kill -9`` leaves the old set and a stale staging
folder, which the next run into the same folder removes.

A lock file (``.NAME.liverlvt-lock``, holding the writer's PID) refuses a second concurrent run
into the same folder; a lock whose process is gone is taken over.

A folder that exists, is not empty and is not a LiverLVT results folder (no ``.liverlvt-results``
marker and files other than LiverLVT's) is refused: a results run never deletes a user's files.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import LiverLVTError, OutputError

MARKER = ".liverlvt-results"
# what LiverLVT writes into a results folder (a folder of only these is ours, marker or not)
KNOWN_OUTPUTS = {"labels.nii.gz", "measurements.json", "lesions.csv", "report.html", "models",
                 "ct.nii.gz", "truth_labels.nii.gz", "truth.json", "metrics.json", "metrics.md",
                 "scene.mrb", MARKER}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    lock = out.parent / f".{out.name}.liverlvt-lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            pid = _read_pid(lock)
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise OutputError(f"another LiverLVT run (process {pid}) is writing to '{out}'",
                                  "wait for it to finish, or choose another output folder") from None
            with contextlib.suppress(OSError):
                lock.unlink()  # stale: its process is gone
    else:
        raise OutputError(f"cannot lock the output folder '{out}'", "choose another output folder")
    try:
        os.write(fd, str(os.getpid()).encode("ascii"))
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def is_results_folder(out: Path) -> bool:
    """True when ``out`` is missing, empty, or holds LiverLVT results only."""
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    names = {p.name for p in out.iterdir()}
    if not names or MARKER in names:
        return True
    # a results folder written before the marker existed: only LiverLVT's file names AND its
    # measurements.json says so (a user's own ct.nii.gz / labels.nii.gz alone is not enough)
    return names <= KNOWN_OUTPUTS and _legacy_measurements(out / "measurements.json")


def _legacy_measurements(path: Path) -> bool:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8")).get("schema", "").startswith("liverlvt.measurements/")
    except (OSError, ValueError, AttributeError):
        return False


def check_inputs_outside(out: Path, inputs=()) -> None:
    """OutputError when one of ``inputs`` lies in ``out`` (or holds it): replacing ``out`` as a
    whole would delete it."""
    real_out = Path(os.path.realpath(out))
    for item in inputs:
        if item is None:
            continue
        real = Path(os.path.realpath(item))
        if real == real_out or real_out in real.parents:
            raise OutputError(f"the output folder '{out}' holds the input '{item}', and a run "
                              "replaces the whole folder", "choose another output folder for the results")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # staging now holds the old set
        return
    old = out.parent / f".{out.name}.liverlvt-old-{os.getpid()}"
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale(out: Path) -> None:
    for pattern in (f".{out.name}.liverlvt-new-*", f".{out.name}.liverlvt-old-*"):
        for path in out.parent.glob(pattern):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _final_name(filename, staging: Path, out: Path) -> str:
    """A staged file named by the path it would have had in ``out``."""
    try:
        return str(out / Path(os.fsdecode(filename)).absolute().relative_to(staging))
    except (TypeError, ValueError):
        return os.fsdecode(filename) if isinstance(filename, (str, bytes, os.PathLike)) else str(filename)


def _in_final_names(exc: LiverLVTError, staging: Path, out: Path,
                    kept: str = "still holds the previous results") -> LiverLVTError:
    """``exc`` with the staging folder's name replaced by the output folder's (a write failure
    also says what ``out`` still holds)."""
    problem = exc.problem.replace(str(staging), str(out))
    if isinstance(exc, OutputError) and kept not in problem:
        problem += f"; '{out}' {kept}"
    if problem == exc.problem:
        return exc
    try:
        return type(exc)(problem, exc.fix)
    except TypeError:  # an error class with its own constructor: keep it as it is
        return exc


class _Terminated(BaseException):
    """SIGTERM turned into an exception, so that a terminated run cleans up like Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    def handler(signum, frame):
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def result_folder(out, inputs=()) -> Iterator[Path]:
    """Yield a staging folder for a complete result set; swap it in for ``out`` on success.
    ``inputs``: the files or folders the run reads; one inside ``out`` is refused (the swap
    would delete it)."""
    out = Path(out).absolute()
    check_inputs_outside(out, inputs)
    if not is_results_folder(out):
        raise OutputError(f"'{out}' exists and holds files that are not LiverLVT results",
                          "choose a new or empty output folder (LiverLVT replaces the whole folder)")
    existing = out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write the output folder '{out}': '{existing}' is a file, not a folder",
                          "choose another output folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write the output folder '{out}' ({exc.strerror or exc})",
                          "choose a writable folder") from None
    if not os.access(out.parent, os.W_OK):
        raise OutputError(f"cannot write into '{out.parent}' (permission denied)", "choose a writable folder")
    with _lock(out), _sigterm_as_exception():
        _remove_stale(out)
        staging = out.parent / f".{out.name}.liverlvt-new-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir()
            (staging / MARKER).write_text("LiverLVT results folder: replaced as a whole by each run\n",
                                          encoding="utf-8")
            yield staging
            _swap_in(staging, out)
        except _Terminated:
            shutil.rmtree(staging, ignore_errors=True)
            raise KeyboardInterrupt("terminated (SIGTERM)") from None
        except LiverLVTError as exc:  # the writer's own words, told in the final folder's names
            shutil.rmtree(staging, ignore_errors=True)
            raise _in_final_names(exc, staging, out) from None
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                where = f" ({_final_name(exc.filename, staging, out)})" if getattr(exc, "filename", None) else ""
                raise OutputError(f"writing the results failed{where}: {exc.strerror or exc}; "
                                  f"'{out}' still holds the previous results",
                                  "free disk space or fix the folder's permissions, then run again") from None
            raise


@contextlib.contextmanager
def staged_files(folder) -> Iterator[Path]:
    """Yield a hidden staging folder inside ``folder`` (a folder of the user's own, e.g. the one
    the Slicer module's Save report / Export models picked); on success move each staged file
    into ``folder`` by one rename (replacing a file of the same name, never deleting any other
    file). A failure while writing leaves ``folder`` as it was; an OSError becomes an
    OutputError naming the file."""
    folder = Path(folder).absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".liverlvt-saving-", dir=folder))
    except OSError as exc:
        raise OutputError(f"cannot write into '{folder}' ({exc.strerror or exc})",
                          "choose a writable folder") from None
    try:
        yield staging
        names = sorted(p.name for p in staging.iterdir())
        for name in names:
            if (folder / name).is_dir() and not (staging / name).is_dir():
                raise OutputError(f"'{folder / name}' is a folder, so the file '{name}' cannot be saved there",
                                  "choose another folder")
        for name in names:
            os.replace(staging / name, folder / name)
    except LiverLVTError as exc:
        raise _in_final_names(exc, staging, folder, "holds the files it held before") from None
    except OSError as exc:
        where = f" ({_final_name(exc.filename, staging, folder)})" if exc.filename else ""
        raise OutputError(f"saving into '{folder}' failed{where}: {exc.strerror or exc}; "
                          "it holds the files it held before",
                          "free disk space or fix the folder's permissions, then save again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
