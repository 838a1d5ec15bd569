"""Progress on the terminal: a tqdm bar per stage, or machine-readable ``LIVERLVT_PROGRESS``
lines (``--progress-lines``, read by the Slicer module's background job)."""
from __future__ import annotations

import math
from typing import Callable, Tuple

from ..core.progress import ProgressFn, progress_line


def cli_progress(progress_lines: bool) -> Tuple[ProgressFn, Callable[[], None]]:
    """(progress callback, close) for the engine's ``progress(stage, fraction)``."""
    if progress_lines:
        def report_line(stage, fraction):
            print(progress_line(stage, fraction), flush=True)

        return report_line, lambda: None
    from tqdm import tqdm

    bar = {"stage": None, "bar": None}

    def report(stage, fraction):
        if bar["stage"] != stage:
            if bar["bar"] is not None:
                bar["bar"].close()
            bar["stage"], bar["bar"] = stage, tqdm(total=100, desc=stage, unit="%", leave=False,
                                               disable=None)  # no bar when not a terminal
        bar["bar"].n = int(round(100 * fraction))
        bar["bar"].refresh()

    return report, lambda: bar["bar"] is not None and bar["bar"].close()


class TrainBars:
    """``progress(stage, done, planned, loss)`` of the training loop as one tqdm bar per stage."""

    def __init__(self):
        self.stage, self.bar = None, None

    def __call__(self, stage: str, done: int, planned: int, loss: float) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=planned, initial=done, desc=f"train {stage}", dynamic_ncols=True)
        self.bar.update(done - self.bar.n)
        if not math.isnan(loss):
            self.bar.set_postfix(loss=f"{loss:.4f}")
        if done >= planned:  # the stage is over: its log lines come after the bar
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stage, self.bar = None, None
