"""A "model soup": one stage's weights averaged over runs fine-tuned from the same starting weights
(Wortsman et al., ICML 2022: the uniform soup of fine-tuned models often beats each of them, at
no inference cost). The first run's folder is copied to OUT (its other stages and its card), the
named stage's weights are replaced by the mean, and the card's sha256 for them is rewritten:

    .venv/bin/python tools/soup.py --stage fine --runs runs/v8r-a runs/v12-a --out runs/soup-a

Only runs whose stage has the same network (same tensor names and shapes) can be averaged; the
result is a model like any other: score it by cross-validation before trusting it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LiverLVTLib.segmentation.model import write_card  # noqa: E402


def average(states: list) -> dict:
    """Mean of state dicts with the same keys and shapes (integer buffers taken from the first)."""
    first = states[0]
    for other in states[1:]:
        if other.keys() != first.keys() or any(other[k].shape != first[k].shape for k in first):
            raise SystemExit("the runs' networks differ: only the same architecture can be averaged")
    return {k: (torch.stack([s[k].float() for s in states]).mean(0).to(first[k].dtype)
                if first[k].is_floating_point() else first[k].clone()) for k in first}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--runs", nargs="+", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    card = json.loads((args.runs[0] / "model.json").read_text())
    stage = next((s for s in card["stages"] if s["name"] == args.stage), None)
    if stage is None:
        raise SystemExit(f"no stage '{args.stage}' in {args.runs[0] / 'model.json'}")
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: give a new folder")
    states = [torch.load(run / stage["weights"], map_location="cpu", weights_only=True) for run in args.runs]
    soup = average(states)  # before anything is written: a refused soup leaves no folder
    shutil.copytree(args.runs[0], args.out, ignore=shutil.ignore_patterns("checkpoints"))
    torch.save(soup, args.out / stage["weights"])
    stage["soup_of"] = [str(run) for run in args.runs]
    write_card(args.out, card)  # atomically, each stage's sha256 from its weights file
    print(f"{args.out}: stage '{args.stage}' averaged over {len(states)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
