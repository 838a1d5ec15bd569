"""JSON Schemas shipped in ``Resources/Schemas`` (``measurements``, ``model``) and the one check
against them, whose messages name the offending field."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import List

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Schemas"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """A JSON Schema shipped in ``Resources/Schemas`` (``measurements`` or ``model``)."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def schema_errors(document, name: str) -> List[str]:
    """Every violation of the named schema, as "field.path: message" (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema(name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors]
