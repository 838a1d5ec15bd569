"""Data manifests: ``manifest.json`` with a ``cases`` list of {id, ct, labels, annotated, phase,
pair_of, license, ...}, paths relative to the manifest's folder. Read by training and evaluation."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from .errors import InputError


def load_manifest(path) -> Dict:
    """The manifest with ``_root`` (its folder, absolute) added; InputError when missing or not a
    LiverLVT manifest."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest '{path}' does not exist", "give the path of a data manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        cases = manifest["cases"]
        assert isinstance(cases, list) and all("id" in c and "ct" in c for c in cases)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise InputError(f"'{path}' is not a LiverLVT data manifest",
                         "a manifest is JSON with a 'cases' list of {id, ct, labels, annotated, ...}") from None
    manifest["_root"] = str(path.resolve().parent)
    return manifest


def is_labelled(entry: Dict) -> bool:
    """True when the case has reference labels and says which classes they annotate."""
    return bool(entry.get("labels")) and bool(entry.get("annotated"))


def labelled_cases(manifest: Dict) -> List[Dict]:
    return [c for c in manifest["cases"] if is_labelled(c)]
