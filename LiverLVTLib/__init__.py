"""LiverLVT engine: CT -> liver/vessel/tumor labels -> measurements -> stage -> report.

Importable without 3D Slicer. The packages follow the pipeline (``core`` -> ``segmentation`` /
``analysis`` / ``synthetic`` -> ``outputs`` / ``mrml`` / ``training`` / ``evaluation`` -> ``app``
-> ``cli``; every import points down). The public face, loaded on first use so that importing
one stage does not pull in the others::

    from LiverLVTLib import AnalysisOptions, SegmentOptions, analyze_case, read_ct, segment_ct, write_analysis
    ct = read_ct("ct.nii.gz")
    labels = segment_ct(ct, SegmentOptions(device="cpu"))
    result = analyze_case(ct, labels, AnalysisOptions(n="N0", m="M0"))
    write_analysis(result, ct, labels, "out/")
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_FACE = {
    "SegmentOptions": "core.options", "AnalysisOptions": "core.options",
    "LiverLVTError": "core.errors", "InputError": "core.errors", "ModelError": "core.errors",
    "OutputError": "core.errors", "Cancelled": "core.errors", "CancelToken": "core.progress",
    "read_ct": "core.io", "read_labels": "core.io", "select_device": "core.device",
    "segment_ct": "segmentation.pipeline", "analyze_case": "analysis.measure",
    "write_analysis": "outputs.writer", "run_demo": "app.demo",
    "evaluate_pair": "evaluation.evaluate", "evaluate_manifest": "evaluation.evaluate",
    "train": "training.train", "TrainOptions": "training.train", "make_phantom": "synthetic.phantom",
}

__all__ = ["__version__", *_FACE]


def __getattr__(name: str):
    if name in _FACE:
        value = getattr(importlib.import_module(f"{__name__}.{_FACE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_FACE))
