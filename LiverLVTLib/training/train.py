"""Train the liver/vessel/tumor cascade (LVT recipe with MONAI) and write a model folder.

Recipe: multi-label sigmoid head (liver, vessel, tumor) with multi-hot targets (liver channel =
liver ∪ vessel ∪ tumor); masked per-class BCE + Dice (classes a case does not annotate weigh 0);
random windowing + rotation/scaling/left-right flip + foreground-oversampled patches drawn on the
device; optional SynthSeg-style images from the label-only IRCAD maps. Two stages: a coarse one
on the whole CT (liver box) and a fine one inside the liver box (see configs/lvt-unet.json).

Seeded and resumable: a checkpoint per stage in ``OUT/checkpoints`` is picked up on the next run
(``--restart`` ignores it). The model folder (``OUT/<stage>.pt`` + ``OUT/model.json``) is what
``liverlvt segment --model OUT`` reads.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lvt-unet.json"
NONCOMMERCIAL = ("Trained on 3D-IRCADb-01 data (CC BY-NC-ND 3.0): these weights are for research, "
                 "NON-COMMERCIAL use only.")


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", required=True,
                        help="data manifest.json (cases are cached on the model grids on first use)")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="training config (JSON)")
    parser.add_argument("--cache", default=None, help="cache folder for preprocessed cases "
                        "(default: the config's 'cache', relative to the current folder)")
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="case ids left out of training (cross-validation folds)")
    parser.add_argument("--stages", default=None, help="comma-separated stages to train (default all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--iterations-scale", type=float, default=1.0,
                        help="multiply every stage's iterations (e.g. longer on a GPU)")
    parser.add_argument("--no-synth", action="store_true",
                        help="do not use images synthesized from the label-only maps")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop (and save) after this wall time, whatever the iterations")
    parser.add_argument("--restart", action="store_true", help="ignore existing checkpoints")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--init-from", default=None,
                        help="model folder whose <stage>.pt weights start training (warm start)")


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    try:
        from ..core.io import atomic_path
    except ImportError:  # a bare training machine without SimpleITK
        atomic_path = None
    if atomic_path is not None:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_card(folder: Path, card: dict) -> None:
    try:
        from ..segmentation.model import write_card

        write_card(folder, card)
    except ImportError:  # no SimpleITK here: same content, plain atomic write
        from ..core.labels import CHANNELS
        from ..segmentation.model import SCHEMA, sha256_file

        for stage in card["stages"]:
            stage["sha256"] = sha256_file(folder / stage["weights"])
        card.setdefault("schema", SCHEMA)
        card.setdefault("labels", list(CHANNELS))
        tmp = folder / ".model.json.part"
        tmp.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, folder / "model.json")


def select_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_network(spec: dict):
    import monai.networks.nets as nets

    return getattr(nets, spec["class"])(**spec["args"])


def lr_at(it: int, total: int, base: float, warmup: int = 20) -> float:
    import math

    if it < warmup:
        return base * (it + 1) / warmup
    t = (it - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train_stage(stage: dict, cases: List[dict], device, seed: int, iterations: int,
                checkpoint: Optional[Path] = None, deadline: Optional[float] = None,
                synth_fraction: float = 0.3, progress: bool = True, log=print,
                init_weights: Optional[Path] = None) -> Dict:
    """Train one stage; returns {"state_dict", "losses", "iterations", "seconds", "complete"}."""
    import numpy as np
    import torch

    from .augment import PatchSampler
    from .losses import MaskedBCEDiceLoss, deep_supervision_loss

    torch.manual_seed(seed)
    np.random.seed(seed)
    net = build_network(stage["network"]).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=stage.get("lr", 2e-3), weight_decay=1e-4)
    sampler = PatchSampler(cases, stage["patch_size"], stage["window_hu"], device=device, seed=seed,
                           fg_prob=stage.get("fg_prob", 0.6),
                           synth_fraction=stage.get("synth_fraction", synth_fraction),
                           tumor_synthesis=stage.get("tumor_synthesis"))
    loss_fn = MaskedBCEDiceLoss(class_weights=stage.get("class_weights", (1.0, 1.0, 1.0))).to(device)
    start, losses, seconds = 0, [], 0.0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sampler.gen.set_state(state["gen"].to("cpu") if device.type == "cpu" else state["gen"].cpu())
        torch.set_rng_state(state["torch_rng"])
        start, losses, seconds = state["it"], state["losses"], state["seconds"]
        log(f"resumed stage '{stage['name']}' at iteration {start}")
    elif init_weights is not None:  # warm start: a new recipe continues from earlier weights
        net.load_state_dict(torch.load(init_weights, map_location=device, weights_only=True))
        log(f"stage '{stage['name']}' warm-started from {init_weights}")
    # bf16 autocast on CUDA, and on CPUs where the config asks for it (AMX-BF16: ~0.7 s vs ~1.1 s
    # per 96^3 batch-2 step, model-levers.md section 5); channels-last 3-D memory layout likewise
    use_amp = device.type == "cuda" or bool(stage.get("cpu_bf16", False))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    channels_last = bool(stage.get("channels_last", False))
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    batch = int(stage.get("batch_size", 2))
    every = max(25, iterations // 10)

    def save(it, elapsed):
        if checkpoint is None:
            return
        _atomic_torch_save({"net": net.state_dict(), "opt": opt.state_dict(), "gen": sampler.gen.get_state(),
                            "torch_rng": torch.get_rng_state(), "it": it, "losses": losses,
                            "seconds": elapsed}, checkpoint)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, initial=start, desc=f"train {stage['name']}", dynamic_ncols=True)
    t0 = time.time() - seconds
    # with a time limit the cosine schedule follows the elapsed share of the budget, so a run
    # stopped by the clock still ends with an annealed learning rate
    budget = None if deadline is None else max(1.0, deadline - time.time() + seconds)
    net.train()
    it = start
    complete = True
    while it < iterations:
        if deadline is not None and time.time() > deadline:
            complete = False
            log(f"time limit reached in stage '{stage['name']}' at iteration {it}/{iterations}")
            break
        step = it
        if budget is not None:
            share = (time.time() - t0) / budget
            step = max(it, int(share * iterations))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, iterations, stage.get("lr", 2e-3))
        x, target, weight = sampler.sample(batch)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = net(x)
        loss = deep_supervision_loss(loss_fn, out.float() if isinstance(out, torch.Tensor) else out,
                                     target, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        opt.step()
        losses.append(float(loss.detach()))
        it += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if it % every == 0 and it < iterations:
            save(it, time.time() - t0)
    if bar is not None:
        bar.close()
    elapsed = time.time() - t0
    save(it, elapsed)
    if sampler.tumor_cfg is not None:
        log(f"stage '{stage['name']}': {sampler.inserted} synthetic tumors inserted")
    return {"state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
            "losses": losses, "iterations": it, "seconds": elapsed, "complete": complete}


def _hardware(device) -> str:
    import torch

    if device.type == "cuda":
        return f"1x {torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def _card_cases(folder: Path, stage: str) -> List[str]:
    """Real cases the model folder's card says its ``stage`` was trained on (warm starts)."""
    card = folder / "model.json"
    if not card.is_file():
        return []
    stages = json.loads(card.read_text(encoding="utf-8")).get("training", {}).get("stages", {})
    info = stages.get(stage, {})
    return list(info.get("cases", [])) if isinstance(info, dict) else []


def run(args) -> int:

    from ..core.errors import InputError
    from .dataset import build_cache, labelled_cases, load_cached, load_manifest

    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    seed = int(args.seed if args.seed is not None else config.get("seed", 0))
    synth = bool(config.get("synth", True)) and not args.no_synth
    cache = Path(args.cache or config.get("cache", ".traindata"))
    out = Path(args.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    stages = config["stages"]
    wanted = set(args.stages.split(",")) if args.stages else {s["name"] for s in stages}
    manifest_path = Path(args.manifest)
    entries = {}
    if manifest_path.is_file():
        manifest = load_manifest(manifest_path)
        entries = {c["id"]: c for c in labelled_cases(manifest)}
        build_cache(manifest, cache, [s for s in stages if s["name"] in wanted], synth=synth)
    elif not cache.is_dir():
        raise InputError(f"manifest '{manifest_path}' not found and no cache at '{cache}'",
                         "pass --manifest with the data manifest.json")
    device = select_device(args.device)
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    log_lines = []

    def log(msg):
        log_lines.append(msg)
        print(msg, flush=True)

    results = {}
    for index, stage in enumerate(stages):
        if stage["name"] not in wanted:
            continue
        cases = load_cached(cache / stage["name"], exclude=args.exclude, synth=synth)
        for case in cases:  # contrast phase drives the synthetic tumors' appearance
            case["phase"] = entries.get(case["id"], {}).get("phase")
        real_ids = [c["id"] for c in cases if not c["id"].startswith("synth-")]
        iterations = int(round(stage["iterations"] * args.iterations_scale))
        ckpt = out / "checkpoints" / f"{stage['name']}.ckpt"
        if args.restart and ckpt.exists():
            ckpt.unlink()
        log(f"stage '{stage['name']}': {len(real_ids)} real + {len(cases) - len(real_ids)} synthetic "
            f"cases, {iterations} iterations on {device}")
        init = None
        if getattr(args, "init_from", None):
            init = Path(args.init_from) / f"{stage['name']}.pt"
            if not init.is_file():
                raise InputError(f"no weights '{init}' to warm-start stage '{stage['name']}' from",
                                 "pass --init-from a model folder holding <stage>.pt")
        result = train_stage(stage, cases, device, seed + index, iterations, ckpt, deadline,
                             synth_fraction=config.get("synth_fraction", 0.3),
                             progress=not args.quiet, log=log, init_weights=init)
        _atomic_torch_save(result["state_dict"], out / f"{stage['name']}.pt")
        if init is not None:  # the warm start's training cases count as seen (cross-validation)
            real_ids = sorted(set(real_ids) | set(_card_cases(init.parent, stage["name"])))
        results[stage["name"]] = {"cases": real_ids,
                                  "synthetic_cases": len(cases) - len(real_ids),
                                  "iterations": result["iterations"],
                                  "iterations_planned": iterations,
                                  "seconds": round(result["seconds"], 1),
                                  "final_loss": round(sum(result["losses"][-50:]) / max(1, len(result["losses"][-50:])), 4),
                                  "complete": result["complete"]}
        if init is not None:
            results[stage["name"]]["warm_start"] = str(init)
        (out / f"losses-{stage['name']}.json").write_text(json.dumps(result["losses"]))
        (out / f"training-{stage['name']}.json").write_text(json.dumps(results[stage["name"]]))
    # the model card (only once every stage has weights)
    card_stages = []
    for stage in stages:
        if not (out / f"{stage['name']}.pt").is_file():
            return 0
        entry = {k: stage[k] for k in ("name", "network", "spacing_mm", "window_hu", "patch_size")}
        entry["weights"] = f"{stage['name']}.pt"
        if stage.get("roi"):
            entry["roi"] = stage["roi"]
        card_stages.append(entry)
    previous = {}
    if (out / "model.json").is_file():
        previous = json.loads((out / "model.json").read_text()).get("training", {}).get("stages", {})
    for stage in stages:  # stages trained by earlier invocations (e.g. --stages fine)
        record = out / f"training-{stage['name']}.json"
        if stage["name"] not in results and record.is_file():
            previous[stage["name"]] = json.loads(record.read_text())
    previous.update(results)
    train_ids = sorted({i for r in previous.values() for i in r.get("cases", [])})
    license_text = "Weights trained on: " + ", ".join(
        f"{i} ({entries[i]['license']})" if i in entries else i for i in train_ids)
    if any(i.startswith("ircadb") for i in train_ids) or synth:
        license_text = NONCOMMERCIAL + " " + license_text
    card = {"name": config.get("name", out.name), "stages": card_stages,
            "inference": config.get("inference", {}), "postprocess": config.get("postprocess", {}),
            "training": {"config": config, "seed": seed, "synthetic_from_label_only": synth,
                         "excluded": list(args.exclude), "hardware": _hardware(device),
                         "stages": previous},
            "license": license_text}
    _write_card(out, card)
    log(f"model folder written: {out}")
    return 0
