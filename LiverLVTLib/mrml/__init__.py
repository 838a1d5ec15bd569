"""LiverLVT in MRML (Slicer's scene), with MRML/VTK only: ``logic.SceneLogic`` publishes a label
map + measurements as nodes and reads edited segments back; ``terminology`` (segment codes and
colours), ``presentation`` (lesion table, staging panel), ``convert`` (SimpleITK <-> MRML),
``headless`` (Slicer's core on the slicer-core wheel). Nothing here runs the pipeline, and
importing it needs no Slicer (MRML is imported where a node is made)."""
from .logic import LVTResult, SceneLogic
from .presentation import staging_summary, staging_text
from .terminology import SEGMENTS, SegmentSpec

__all__ = ["LVTResult", "SceneLogic", "SEGMENTS", "SegmentSpec", "staging_summary", "staging_text"]
