"""Data manifests: ``manifest.json`` with a ``cases`` list of {id, ct, labels, annotated, phase,
pair_of, license, ...}, paths relative to the manifest's folder. Read by training and evaluation."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

from .errors import InputError
from .labels import CHANNELS


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
    check_cases(cases, path)
    manifest["_root"] = str(path.resolve().parent)
    return manifest


def check_cases(cases: List[Dict], path) -> None:
    """Each entry's ``id`` unique and text, ``annotated`` a list of class names (liver, vessel,
    tumor), ``pair_of`` the id of another case: InputError naming the case and the field."""
    fix = ("each case: 'id' a unique name, 'annotated' a list such as [\"liver\", \"tumor\"], "
           "'pair_of' the id of the other phase's case")
    ids = [c["id"] for c in cases]
    for case in cases:
        cid = case["id"]
        where = f"manifest '{path}', case '{cid}'"
        if not isinstance(cid, str) or not cid or ids.count(cid) > 1:
            raise InputError(f"{where}: 'id' must be a unique non-empty text", fix)
        annotated = case.get("annotated")
        if annotated is not None and (not isinstance(annotated, list)
                                      or any(name not in CHANNELS for name in annotated)):
            raise InputError(f"{where}: 'annotated' must be a list of {', '.join(CHANNELS)}, "
                             f"not {json.dumps(annotated)}", fix)
        partner = case.get("pair_of")
        if partner is not None and (partner == cid or partner not in ids):
            why = "names the case itself" if partner == cid else "names no case of the manifest"
            raise InputError(f"{where}: 'pair_of' {json.dumps(partner)} {why}", fix)


def is_labelled(entry: Dict) -> bool:
    """True when the case has reference labels and says which classes they annotate."""
    return bool(entry.get("labels")) and bool(entry.get("annotated"))


def labelled_cases(manifest: Dict) -> List[Dict]:
    return [c for c in manifest["cases"] if is_labelled(c)]


def with_partners(cases: Sequence[Dict], ids) -> set:
    """``ids`` plus every case paired with one of them by ``pair_of`` (either direction): the
    phases of one study stay together when a fold leaves cases out."""
    ids = set(ids)
    for case in cases:
        partner = case.get("pair_of")
        if partner and (case["id"] in ids or partner in ids):
            ids |= {case["id"], partner}
    return ids


def partner_labelled_cases(manifest: Dict) -> List[Dict]:
    """CT-only cases whose phase partner (``pair_of``, either direction) is labelled: a copy of the
    entry that borrows the partner's ``labels`` and ``annotated`` and names it in ``labels_from``
    and ``ct_from`` (the partner's CT, to check that the two series share one frame)."""
    by_id = {c["id"]: c for c in manifest["cases"]}
    out = []
    for case in manifest["cases"]:
        if is_labelled(case):
            continue
        partners = sorted(with_partners(manifest["cases"], [case["id"]]) - {case["id"]})
        source = next((by_id[i] for i in partners if is_labelled(by_id[i])), None)
        if source is not None:
            out.append({**case, "labels": source["labels"], "annotated": source["annotated"],
                        "labels_from": source["id"], "ct_from": source["ct"]})
    return out
