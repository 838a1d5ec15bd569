"""Writing files atomically (no SimpleITK needed: a bare training machine writes its model
folder with these). :mod:`LiverLVTLib.core.io` re-exports them beside the image readers."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

from .errors import OutputError

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def ensure_output_dir(path: PathLike) -> Path:
    """Create ``path`` if needed and make sure files can be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".liverlvt-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder '{path}' ({exc.strerror or exc})",
                          "choose a writable output folder") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); move it into place on success.

    An existing file at ``path`` is replaced in one step (``os.replace``) or left untouched when
    the writer fails: never half-overwritten.
    """
    path = Path(path)
    suffix = _suffix(path) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(text: str, path: PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(data: bytes, path: PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
