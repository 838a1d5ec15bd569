"""Errors that the CLI and the Slicer module turn into one clear line (problem + fix)."""


class LiverLVTError(Exception):
    """A problem the user can fix. ``str()`` gives 'problem. Fix: fix'."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. Fix: {fix}" if fix else problem)


class InputError(LiverLVTError):
    """Bad input: not a CT, unreadable, wrong geometry, bad labels, ..."""


class ModelError(LiverLVTError):
    """Missing, tampered or unusable model folder / weights."""


class OutputError(LiverLVTError):
    """The output location cannot be written."""


class Cancelled(LiverLVTError):
    """The user cancelled a running job; nothing was written."""

    exit_code = 130

    def __init__(self, problem: str = "Cancelled by the user", fix: str = ""):
        super().__init__(problem, fix)
