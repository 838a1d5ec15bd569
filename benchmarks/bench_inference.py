"""Benchmark: CPU inference precision and memory format, A/B in one run on one CT.

Runs the shipped model's whole segmentation (both stages + post-processing, in process) once
untimed (warm-up: the first run pays library and allocator start-up), then ``--rounds`` rounds
of fp32, bf16 autocast, and each with channels-last-3d (interleaved, so a change of load hits
every variant), and prints each variant's median time as a ratio to fp32's median and the Dice
of its labels against the fp32 labels per class (liver, vessel, tumor); first, the network
alone on one batch of windows, interleaved ``--window-rounds`` times. The model card's
``inference.cpu_precision`` / ``channels_last`` are overridden in memory only.

    nice .venv/bin/python benchmarks/bench_inference.py [--ct ../shared/data/cases/ircadb-1.1/ct.nii.gz]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_CT = REPO.parent / "shared" / "data" / "cases" / "ircadb-1.1" / "ct.nii.gz"
VARIANTS = (("fp32", "fp32", False), ("bf16", "bf16", False),
            ("fp32+channels_last", "fp32", True), ("bf16+channels_last", "bf16", True))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def segment_with(ct, precision: str, channels_last: bool):
    import SimpleITK as sitk

    from LiverLVTLib.segmentation import pipeline
    from LiverLVTLib.segmentation.model import load_card

    def patched(folder=None):
        card = load_card(folder)
        card.card.setdefault("inference", {}).update(cpu_precision=precision,
                                                      channels_last=channels_last)
        return card

    original, pipeline.load_card = pipeline.load_card, patched
    try:
        start = time.perf_counter()
        labels = pipeline.segment_ct(ct, device="cpu", tta=False)
        wall = time.perf_counter() - start
    finally:
        pipeline.load_card = original
    return wall, sitk.GetArrayFromImage(labels)


def window_ab(rounds: int) -> None:
    """The fine stage's network alone on one batch of windows (the card's sw_batch_size x patch),
    interleaved rounds: the minimum per variant is the least load-disturbed figure."""
    import torch

    from LiverLVTLib.segmentation.inference import _autocast
    from LiverLVTLib.segmentation.model import load_card

    card = load_card()
    stage = card.stages[-1]
    batch = int(card.inference.get("sw_batch_size", 2))
    x = torch.rand(batch, 1, *stage.patch_size)
    network = stage.load_network("cpu")
    times = {name: [] for name, _, _ in VARIANTS}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, precision, channels_last in VARIANTS:
                fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
                net, xi = network.to(memory_format=fmt), x.contiguous(memory_format=fmt)
                with _autocast(torch.device("cpu"), precision):
                    start = time.perf_counter()
                    net(xi)
                    times[name].append(time.perf_counter() - start)
    base = min(times["fp32"])
    print(f"fine network, {batch} x {stage.patch_size} windows, {rounds} interleaved rounds "
          f"(load {os.getloadavg()[0]:.2f}):")
    for name, _, _ in VARIANTS:
        print(f"  {name:20s} min {min(times[name]):5.2f} s  median {np.median(times[name]):5.2f} s"
              f"  min x{min(times[name]) / base:4.2f} of fp32")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window-rounds", type=int, default=6,
                        help="rounds of the network-only A/B on one batch of windows (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.ct.exists():
        print(f"benchmark skipped: {args.ct} not found (needs ../shared/data)")
        return 0
    import torch

    from LiverLVTLib.core.io import read_ct

    if args.window_rounds > 0:
        window_ab(args.window_rounds)
    if args.rounds <= 0:
        return 0
    ct = read_ct(args.ct)
    print(f"CT {args.ct}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    segment_with(ct, "fp32", False)
    times = {name: [] for name, _, _ in VARIANTS}
    labels_of = {}
    for round_ in range(args.rounds):
        for name, precision, channels_last in VARIANTS:
            wall, labels_of[name] = segment_with(ct, precision, channels_last)
            times[name].append(wall)
            print(f"round {round_ + 1} {name:20s} {wall:6.1f} s  load {os.getloadavg()[0]:.2f}",
                  flush=True)
    base = float(np.median(times["fp32"]))
    rows = []
    for name, _, _ in VARIANTS:
        scores = [dice(labels_of["fp32"] == k, labels_of[name] == k) for k in (1, 2, 3)]
        median = float(np.median(times[name]))
        rows.append({"variant": name, "wall_s": times[name], "ratio_to_fp32": median / base,
                     "dice_vs_fp32": dict(zip(("liver", "vessel", "tumor"), scores))})
        print(f"{name:20s} median {median:6.1f} s  x{median / base:4.2f} of fp32   Dice vs fp32 "
              f"liver {scores[0]:.4f} vessel {scores[1]:.4f} tumor {scores[2]:.4f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
