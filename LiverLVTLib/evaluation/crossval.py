"""Cross-validation bookkeeping: which fold model may score which case.

A fold is a model folder whose card lists the real cases it trained on
(``training.stages.<stage>.cases``, written by ``liverlvt train``). ``liverlvt evaluate --folds A B``
scores every case with a fold that never saw it, so the pooled table is a k-fold estimate in
which no case is scored by a model that trained on it. A phase pair is kept together: both phases
of a study are segmented by one fold that trained on neither (otherwise the volume difference
would mix two models, or one model would have seen the study).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

from ..core.errors import InputError
from ..core.manifest import with_partners


def trained_cases(card: Dict) -> set:
    """Real case ids a model card says it trained on (any stage)."""
    stages = (card.get("training") or {}).get("stages") or {}
    return {cid for record in stages.values() for cid in record.get("cases", [])}


def assign_folds(entries: Sequence[Dict], folds: Dict[str, set]) -> Dict[str, str]:
    """case id -> name of the first fold (in the given order) that trained on none of its study.

    Partners named by ``pair_of`` in either direction count as one study
    (:func:`..core.manifest.with_partners`). A case that every fold has seen is an
    :class:`InputError` naming it, never silently scored.
    """
    assignment, unseen_by_none = {}, []
    for entry in entries:
        study = with_partners(entries, [entry["id"]])
        fold = next((name for name, seen in folds.items() if not study & seen), None)
        if fold is None:
            unseen_by_none.append(entry["id"])
        else:
            assignment[entry["id"]] = fold
    if unseen_by_none:
        raise InputError(f"case(s) {unseen_by_none} were trained on by every fold model given",
                         "add a fold that holds them out (liverlvt train --exclude ...) or leave "
                         "them out with --cases")
    return assignment


def load_folds(paths: Sequence) -> Dict[str, Dict]:
    """fold name (folder name) -> {"path", "trained"} for each model folder."""
    from ..segmentation.model import load_card

    folds: Dict[str, Dict] = {}
    for path in paths:
        card = load_card(path)
        name = Path(path).name
        if name in folds:
            raise InputError(f"two fold folders are both named '{name}'",
                             "give each fold model its own folder name")
        folds[name] = {"path": Path(path), "trained": trained_cases(card.card)}
    return folds

