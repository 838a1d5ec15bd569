"""Pack a cross-validation base (a model folder that never saw one fold family's held-out cases)
into ``tools/cv-bases/<name>`` so that the fold models can be rebuilt from git after the ignored
``runs/`` folder is lost (tools/cv_bases.sh). The weights are stored in float16: a base is only
ever a warm start (``liverlvt train --init-from``, whose ``load_state_dict`` casts them back to
float32), and half precision keeps a base of both stages near 12 MB. The card (``model.json``)
keeps the training record (cases, excluded cases, iterations, config, licenses); its sha256 lines
are rewritten for the packed files, so ``liverlvt evaluate --model`` also reads the folder.

    .venv/bin/python tools/cv_base_pack.py --run runs/base-b --out tools/cv-bases/fold-b
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LiverLVTLib.segmentation.model import write_card  # noqa: E402


def half(state: dict) -> dict:
    """float32 tensors -> float16 (integer buffers unchanged)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


def readme(card: dict, run: Path) -> str:
    """The base's short card: what it is for, what it never saw, what it was trained on, license."""
    training = card.get("training", {})
    lines = [f"# Cross-validation base packed from `{run}`", "",
             "A warm start for cross-validation fold models (`tools/cv_bases.sh`, "
             "`tools/cv_recipe.sh`), not a model to segment with: float16 weights of "
             + ", ".join(f"`{s['weights']}`" for s in card["stages"]) + ".", "",
             "Never trained on (held out with their phase partners): "
             + ", ".join(training.get("excluded", [])) + ".", ""]
    for name, record in training.get("stages", {}).items():
        lines.append(f"- stage {name}: {record.get('iterations')} iterations, "
                     f"{len(record.get('cases', []))} real cases ({', '.join(record.get('cases', []))}) "
                     f"+ {record.get('synthetic_cases', 0)} synthetic from label-only maps")
    lines += ["", "License: " + card.get("license", "see the training cases' licenses"), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: a packed base is replaced on purpose only (remove it first)")
    card = json.loads((args.run / "model.json").read_text())
    args.out.mkdir(parents=True)
    for stage in card["stages"]:
        state = torch.load(args.run / stage["weights"], map_location="cpu", weights_only=True)
        torch.save(half(state), args.out / stage["weights"])
    write_card(args.out, card)
    (args.out / "README.md").write_text(readme(card, args.run))
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 1e6
    print(f"{args.out}: {', '.join(s['weights'] for s in card['stages'])} in float16, {size:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
