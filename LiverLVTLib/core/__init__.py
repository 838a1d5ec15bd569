"""Shared ground of every stage: typed options (``options``: SegmentOptions, AnalysisOptions,
the one home of their defaults), errors with a fix (``errors``), image reading and atomic writing
(``io``, ``files``, ``image_check``), grids (``preprocess``), labels, progress/cancel, the device
choice (``device``), data manifests (``manifest``), result folders and JSON schemas. Imports no
other LiverLVT package."""
from .errors import Cancelled, InputError, LiverLVTError, ModelError, OutputError
from .options import AnalysisOptions, SegmentOptions

__all__ = ["AnalysisOptions", "Cancelled", "InputError", "LiverLVTError", "ModelError",
           "OutputError", "SegmentOptions"]
