"""Progress reporting and cancellation shared by the CLI, the Slicer module and tests.

A progress callback is ``fn(stage: str, fraction: float)`` with fraction in [0, 1] for that
stage. Cancellation is cooperative: long loops call ``token.check()`` between units of work
(e.g. between sliding-window batches) and a cancelled token raises :class:`Cancelled`.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from .errors import Cancelled

ProgressFn = Callable[[str, float], None]


def no_progress(stage: str, fraction: float) -> None:
    """Default callback: report nothing."""


class CancelToken:
    """Thread-safe cancel flag; ``cancel()`` from any thread, ``check()`` in the worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def checker(token: Optional[CancelToken]) -> Callable[[], None]:
    """A no-argument function that raises Cancelled when ``token`` was cancelled."""
    return token.check if token is not None else (lambda: None)


def progress_line(stage: str, fraction: float) -> str:
    """Machine-readable progress line printed by the CLI (``--progress-lines``), parsed by the
    Slicer module's background process reader."""
    return f"LIVERLVT_PROGRESS {stage} {fraction:.4f}"


def parse_progress_line(line: str):
    """Inverse of :func:`progress_line`; returns (stage, fraction) or None."""
    parts = line.strip().split()
    if len(parts) == 3 and parts[0] == "LIVERLVT_PROGRESS":
        try:
            return parts[1], float(parts[2])
        except ValueError:
            return None
    return None
