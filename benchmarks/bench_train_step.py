"""Training throughput on this machine, A/B in one run: the patch sampler (with and without
synthetic tumors) and one forward+backward+AdamW step of the fine stage in fp32 vs bf16 autocast,
default vs channels-last-3d memory layout.

    .venv/bin/python benchmarks/bench_train_step.py --cache /work/traincache --threads 1

Prints seconds per batch (median of ``--repeats``) and the ratio against fp32/default layout, and
whether the CPU has bf16 natively (where it does not, the bf16 rows show the emulation's cost and
training runs in fp32: :func:`LiverLVTLib.core.device.cpu_has_native_bf16`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from LiverLVTLib.core.device import cpu_has_native_bf16
from LiverLVTLib.training.augment import PatchSampler
from LiverLVTLib.training.dataset import load_cached
from LiverLVTLib.training.losses import MaskedBCEDiceLoss
from LiverLVTLib.training.train import build_network

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=str(ROOT / ".traindata"))
    ap.add_argument("--config", default=str(ROOT / "configs" / "lvt-unet-v2.json"))
    ap.add_argument("--stage", default="fine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = json.loads(Path(args.config).read_text())
    stage = next(s for s in config["stages"] if s["name"] == args.stage)
    cases = [c for c in load_cached(Path(args.cache) / args.stage) if not c["id"].startswith("synth-")]
    batch = int(stage.get("batch_size", 2))
    rows = []
    for label, tumors in (("sampler, no synthetic tumors", None),
                          ("sampler, synthetic tumors p=1", dict(stage.get("tumor_synthesis") or {}, probability=1.0))):
        sampler = PatchSampler(cases, stage["patch_size"], stage["window_hu"], fg_prob=stage.get("fg_prob", 0.6),
                               synth_fraction=0.0, tumor_synthesis=tumors)
        rows.append((label, timed(lambda: sampler.sample(batch), args.repeats)))
    sampler = PatchSampler(cases, stage["patch_size"], stage["window_hu"], synth_fraction=0.0)
    x, target, weight = sampler.sample(batch)
    loss_fn = MaskedBCEDiceLoss()
    for label, bf16, cl in (("step fp32, default layout", False, False),
                            ("step fp32, channels_last_3d", False, True),
                            ("step bf16 autocast, default layout", True, False),
                            ("step bf16 autocast + channels_last_3d", True, True)):
        net = build_network(stage["network"])
        xin = x
        if cl:
            net = net.to(memory_format=torch.channels_last_3d)
            xin = x.contiguous(memory_format=torch.channels_last_3d)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(xin)
            loss = loss_fn(out.float(), target, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rows.append((label, timed(step, args.repeats)))
    base = dict(rows)["step fp32, default layout"]
    native = cpu_has_native_bf16(torch)
    print(f"threads={args.threads} batch={batch} patch={stage['patch_size']} cases={len(cases)} "
          f"native bf16: {'yes' if native else 'no (emulated: the trainer uses fp32 here)'}")
    for label, sec in rows:
        print(f"{label:42s} {sec:7.3f} s   ×{sec / base:5.2f} of the fp32 step")


if __name__ == "__main__":
    main()
