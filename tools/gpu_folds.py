"""Train every cross-validation fold and the final all-cases model in parallel on one GPU.

Runs on a bare GPU machine (torch + monai, no SimpleITK): reads the preprocessed cases from the
cache made by ``liverlvt train`` (``.traindata``), starts one training process per model, then
scores each fold's fine stage on its held-out cases inside their reference liver box (a quick
proxy used to compare the synthesis lever; the real scores come from ``liverlvt evaluate``).
Weights are saved as float16 (they load into the float32 networks) to fit the transfer limits.

    python tools/gpu_folds.py --out $OUT --minutes 8.5 --coarse-iters 800 --fine-iters 2000

Status: written for the next task that is lent a GPU; it has NOT been run on one yet (this task
had no GPU), so treat it as a plan in code, to be checked on its first GPU run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FOLDS = [["ircadb-1.1", "radcttaceomics-0697-eqp"],
         ["ircadb-1.7", "radcttaceomics-2022-ap"],
         ["radcttaceomics-1211-ap", "lits-0"],
         ["radcttaceomics-2144-eqp", "crlm-1100"]]

WORKER = ("import argparse,sys; sys.path.insert(0, %r); from LiverLVTLib.cli import train; "
          "p=argparse.ArgumentParser(); train.add_arguments(p); sys.exit(train.run(p.parse_args(sys.argv[1:])))")


def proxy_scores(run_dir: Path, cache: Path, held_out, config) -> dict:
    import numpy as np
    import torch
    from monai.inferers import SlidingWindowInferer

    from LiverLVTLib.training.dataset import decode_hu, multi_hot
    from LiverLVTLib.training.train import build_network

    stage = [s for s in config["stages"] if s["name"] == "fine"][0]
    net = build_network(stage["network"])
    net.load_state_dict(torch.load(run_dir / "fine.pt", map_location="cpu", weights_only=True))
    net = net.cuda().eval()
    inferer = SlidingWindowInferer(stage["patch_size"], sw_batch_size=4, overlap=0.5, mode="gaussian")
    scores = {}
    for cid in held_out:
        with np.load(cache / "fine" / f"{cid}.npz") as d:
            image, labels, annotated = d["image"], d["labels"], d["annotated"]
        low, high = stage["window_hu"]
        x = torch.from_numpy(((decode_hu(image) - low) / (high - low)).clip(0, 1))[None, None].cuda()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            prob = torch.sigmoid(inferer(x, net).float())[0]
            prob = (prob + torch.sigmoid(inferer(torch.flip(x, [4]), net).float())[0].flip([3])) / 2
        pred = (prob >= 0.5).cpu().numpy()
        ref = multi_hot(labels).astype(bool)
        scores[cid] = {}
        for c, name in enumerate(("liver", "vessel", "tumor")):
            if annotated[c]:
                inter = (pred[c] & ref[c]).sum()
                denom = pred[c].sum() + ref[c].sum()
                scores[cid][name] = float(2 * inter / denom) if denom else 1.0
    return scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--coarse-iters", type=int, default=600)
    ap.add_argument("--fine-iters", type=int, default=1500)
    ap.add_argument("--config", default=str(REPO / "configs" / "lvt-unet.json"))
    ap.add_argument("--no-ablation", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    runs = REPO / "runs"
    runs.mkdir(exist_ok=True)
    config = json.loads(Path(args.config).read_text())
    for s in config["stages"]:
        s["iterations"] = args.coarse_iters if s["name"] == "coarse" else args.fine_iters
    cfg_path = runs / "config.json"
    cfg_path.write_text(json.dumps(config))
    jobs = {"final": ([], [])}
    for k, held in enumerate(FOLDS):
        jobs[f"fold{k}"] = (held, [])
        if not args.no_ablation:
            jobs[f"fold{k}-nosynth"] = (held, ["--no-synth", "--stages", "fine"])
    procs = {}
    t0 = time.time()
    for name, (held, extra) in jobs.items():
        cmd = [sys.executable, "-c", WORKER % str(REPO), "--manifest", "none", "--out", str(runs / name),
               "--config", str(cfg_path), "--cache", str(REPO / ".traindata"), "--quiet",
               "--max-minutes", str(args.minutes), "--exclude", *held, *extra]
        log = open(runs / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
    for name, (proc, log) in procs.items():
        proc.wait()
        log.close()
    train_s = time.time() - t0
    summary = {"train_wall_s": round(train_s, 1), "runs": {}}
    import torch

    for name in jobs:
        d = runs / name
        info = {"log_tail": (d.parent / f"{name}.log").read_text()[-1500:]}
        for stage in ("coarse", "fine"):
            lf = d / f"losses-{stage}.json"
            if lf.is_file():
                losses = json.loads(lf.read_text())
                info[stage] = {"iterations": len(losses), "loss_first": losses[:5],
                               "loss_last50": sum(losses[-50:]) / max(1, len(losses[-50:]))}
        summary["runs"][name] = info
    # proxy scores on held-out cases (fine stage, reference liver box)
    for name, (held, _) in jobs.items():
        if held and (runs / name / "fine.pt").is_file():
            try:
                summary["runs"][name]["proxy"] = proxy_scores(runs / name, REPO / ".traindata", held, config)
            except Exception as exc:  # noqa: BLE001
                summary["runs"][name]["proxy_error"] = repr(exc)
    # pack float16 weights + cards
    for name in jobs:
        d = runs / name
        if name.endswith("nosynth") or not (d / "fine.pt").is_file():
            continue
        with tarfile.open(out / f"{name}.tar", "w") as tar:
            for f in sorted(d.iterdir()):
                if f.suffix == ".pt":
                    sd = torch.load(f, map_location="cpu", weights_only=True)
                    half = d / f"{f.stem}.f16"
                    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, half)
                    tar.add(half, arcname=f.name)
                elif f.suffix == ".json":
                    tar.add(f, arcname=f.name)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "log_tail"} for k, v in summary["runs"].items()}, indent=1))
    print("train wall s", train_s)


if __name__ == "__main__":
    main()
