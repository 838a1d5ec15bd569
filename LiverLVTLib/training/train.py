"""Train the liver/vessel/tumor cascade (LVT recipe with MONAI) and write a model folder.

Recipe: multi-label sigmoid head (liver, vessel, tumor) with multi-hot targets (liver channel =
liver ∪ vessel ∪ tumor); masked per-class BCE + Dice (classes a case does not annotate weigh 0);
random windowing + rotation/scaling/left-right flip (a stage's ``flip_prob``, default 0.5; 0
keeps the patient's sides, the liver on the right) + foreground-oversampled patches drawn on the
device; optional SynthSeg-style images from the label-only IRCAD maps. Two stages: a coarse one
on the whole CT (liver box) and a fine one inside the liver box (see configs/lvt-unet.json).

Seeded and resumable: a checkpoint per stage in ``OUT/checkpoints`` is picked up on the next run
(``restart`` ignores it). The model folder (``OUT/<stage>.pt`` + ``OUT/model.json``) is what
``liverlvt segment --model OUT`` reads. The engine logs through a ``log`` callback and reports
steps through a ``progress`` callback; ``liverlvt train`` (:mod:`LiverLVTLib.cli.train`) passes
print and a progress bar.
"""
from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..core.device import select_device
from ..core.errors import InputError
from ..core.files import atomic_path
from ..core.labels import CHANNELS
from ..core.manifest import load_manifest, with_partners
from ..segmentation.model import build_network, write_card

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lvt-unet.json"
NONCOMMERCIAL = ("Trained on 3D-IRCADb-01 data (CC BY-NC-ND 3.0): these weights are for research, "
                 "NON-COMMERCIAL use only.")

LogFn = Callable[[str], None]
StepFn = Callable[[str, int, int, float], None]  # (stage, iterations done, planned, recent loss)
_logger = logging.getLogger("liverlvt")

__all__ = ["DEFAULT_CONFIG", "TrainOptions", "build_network", "lr_at", "train", "train_stage"]


@dataclass
class TrainOptions:
    """One ``train`` run: data, output folder and recipe overrides (see ``liverlvt train -h``)."""

    manifest: Path
    out: Path
    config: Path = DEFAULT_CONFIG
    cache: Optional[Path] = None  # default: the config's "cache", relative to the current folder
    exclude: Sequence[str] = ()  # case ids left out (cross-validation folds)
    stages: Optional[Sequence[str]] = None  # default: every stage of the config
    device: str = "auto"
    iterations_scale: float = 1.0
    synth: bool = True  # images synthesized from the label-only maps (when the config allows)
    max_minutes: Optional[float] = None
    restart: bool = False
    seed: Optional[int] = None  # default: the config's seed
    init_from: Optional[Path] = None  # model folder whose <stage>.pt weights start training


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def lr_at(it: int, total: int, base: float, warmup: int = 20) -> float:
    if it < warmup:
        return base * (it + 1) / warmup
    t = (it - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# ----------------------------------------------------------------------------- one stage
@dataclass
class _Run:
    """The state of one stage's training (network, optimizer, sampler, history)."""

    stage: dict
    device: object
    net: object
    opt: object
    sampler: object
    loss_fn: object
    start: int = 0
    losses: List[float] = field(default_factory=list)
    seconds: float = 0.0

    def save(self, checkpoint: Optional[Path], it: int, elapsed: float) -> None:
        import torch

        if checkpoint is None:
            return
        _atomic_torch_save({"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                            "gen": self.sampler.gen.get_state(), "torch_rng": torch.get_rng_state(),
                            "it": it, "losses": self.losses, "seconds": elapsed}, checkpoint)


def _new_run(stage: dict, cases: List[dict], device, seed: int, synth_fraction: float) -> _Run:
    import numpy as np
    import torch

    from ..segmentation.inputs import check_inputs, stage_inputs_of
    from .augment import HARD_SHELL_MM, THICK_SLICE_MM, PatchSampler
    from .losses import MaskedBCEDiceLoss

    check_inputs(stage_inputs_of(stage), stage["network"], stage["name"], has_roi=bool(stage.get("roi")))
    torch.manual_seed(seed)
    np.random.seed(seed)
    net = build_network(stage["network"], stage["name"]).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=stage.get("lr", 2e-3), weight_decay=1e-4)
    sampler = PatchSampler(cases, stage["patch_size"], stage["window_hu"], device=device, seed=seed,
                           fg_prob=stage.get("fg_prob", 0.6),
                           synth_fraction=stage.get("synth_fraction", synth_fraction),
                           tumor_synthesis=stage.get("tumor_synthesis"),
                           # TotalSegmentator trains nnU-Net without mirroring (nnUNet PR #1938,
                           # nnUNetTrainer_DASegOrd0_NoMirroring) so left and right organs stay apart
                           p_flip=stage.get("flip_prob", 0.5),
                           hard_prob=stage.get("hard_negative_prob", 0.0),
                           hard_shell_mm=stage.get("hard_negative_shell_mm", HARD_SHELL_MM),
                           compress_prob=stage.get("compress_enhancement_prob", 0.0),
                           thick_prob=stage.get("thick_slice_prob", 0.0),
                           thick_mm=tuple(stage.get("thick_slice_mm", THICK_SLICE_MM)),
                           extras=stage_inputs_of(stage)[1:],
                           tumor_per_lesion=float(stage.get("tumor_per_lesion", 0.0)),
                           tumor_slice_profile=bool(stage.get("tumor_slice_profile", False)))
    loss_fn = MaskedBCEDiceLoss(class_weights=stage.get("class_weights", (1.0, 1.0, 1.0)),
                                exclusion=float(stage.get("exclusion_loss", 0.0)),
                                blob=float(stage.get("blob_loss", 0.0)),
                                tumor_fn_weight=stage.get("tumor_fn_weight")).to(device)
    return _Run(stage, device, net, opt, sampler, loss_fn)


def _restore(run: _Run, checkpoint: Optional[Path], init_weights: Optional[Path], log: LogFn) -> None:
    """Resume from ``checkpoint`` when there is one, else warm-start from ``init_weights``."""
    import torch

    name, device = run.stage["name"], run.device
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        run.net.load_state_dict(state["net"])
        run.opt.load_state_dict(state["opt"])
        run.sampler.gen.set_state(state["gen"].to("cpu") if device.type == "cpu" else state["gen"].cpu())
        torch.set_rng_state(state["torch_rng"])
        run.start, run.losses, run.seconds = state["it"], state["losses"], state["seconds"]
        log(f"resumed stage '{name}' at iteration {run.start}")
    elif init_weights is not None:  # warm start: a new recipe continues from earlier weights
        state = torch.load(init_weights, map_location=device, weights_only=True)
        state, widened = widen_input_channels(state, run.net.state_dict())
        run.net.load_state_dict(state)
        log(f"stage '{name}' warm-started from {init_weights}"
            + (f" (new input channels start at zero weight in {', '.join(widened)})" if widened else ""))


def widen_input_channels(state: dict, target: dict) -> tuple:
    """Warm start onto a network with more input channels (a CT-only stage -> CT + vesselness):
    every tensor that differs from the new network's only by a larger dimension 1 (the first
    convolutions' input channels) is padded with zeros, so the widened network starts out
    computing exactly what the old one did and learns what the new channels add. Returns (state,
    names of the widened tensors)."""
    import torch

    out, widened = dict(state), []
    for key, value in state.items():
        want = target.get(key)
        if (want is None or value.dim() < 2 or value.shape == want.shape or value.dim() != want.dim()
                or value.shape[0] != want.shape[0] or value.shape[2:] != want.shape[2:]
                or value.shape[1] > want.shape[1]):
            continue
        pad = torch.zeros((value.shape[0], want.shape[1] - value.shape[1], *value.shape[2:]),
                          dtype=value.dtype, device=value.device)
        out[key] = torch.cat([value, pad], dim=1)
        widened.append(key)
    return out, widened


def _step_function(run: _Run):
    """One optimizer step on a fresh batch at a learning rate; returns the loss."""
    import torch

    from ..core.device import cpu_has_native_bf16
    from .losses import deep_supervision_loss

    stage, device = run.stage, run.device
    # bf16 autocast on CUDA, and on CPUs where the config asks for it and the CPU has it natively
    # (AMX-BF16: ~0.7 s vs ~1.1 s per 96^3 batch-2 step, model-levers.md section 5; emulated on an
    # AVX2 CPU: 14x slower than fp32); channels-last 3-D memory layout where the config asks
    use_amp = device.type == "cuda" or (bool(stage.get("cpu_bf16", False)) and cpu_has_native_bf16(torch))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    channels_last = bool(stage.get("channels_last", False))
    if channels_last:
        run.net = run.net.to(memory_format=torch.channels_last_3d)
    batch = int(stage.get("batch_size", 2))

    def step(lr: float) -> float:
        for group in run.opt.param_groups:
            group["lr"] = lr
        x, target, weight = run.sampler.sample(batch)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = run.net(x)
        loss = deep_supervision_loss(run.loss_fn, out.float() if isinstance(out, torch.Tensor) else out,
                                     target, weight)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.net.parameters(), 12.0)
        run.opt.step()
        return float(loss.detach())

    return step


def train_stage(stage: dict, cases: List[dict], device, seed: int, iterations: int,
                checkpoint: Optional[Path] = None, deadline: Optional[float] = None,
                synth_fraction: float = 0.3, progress: Optional[StepFn] = None,
                log: LogFn = _logger.info, init_weights: Optional[Path] = None) -> Dict:
    """Train one stage; returns {"state_dict", "losses", "iterations", "seconds", "complete"}.

    ``progress(stage, done, planned, recent_loss)`` is called before the first step and after
    each one; ``log`` gets the resume / warm-start / time-limit messages."""
    run = _new_run(stage, cases, device, seed, synth_fraction)
    _restore(run, checkpoint, init_weights, log)
    step = _step_function(run)
    losses, name, base_lr = run.losses, stage["name"], stage.get("lr", 2e-3)
    every = max(25, iterations // 10)
    report = progress or (lambda *_: None)
    report(name, run.start, iterations, math.nan)
    t0 = time.time() - run.seconds
    # with a time limit the cosine schedule follows the elapsed share of the budget, so a run
    # stopped by the clock still ends with an annealed learning rate
    budget = None if deadline is None else max(1.0, deadline - time.time() + run.seconds)
    run.net.train()
    it, complete = run.start, True
    while it < iterations:
        if deadline is not None and time.time() > deadline:
            complete = False
            log(f"time limit reached in stage '{name}' at iteration {it}/{iterations}")
            break
        at = it if budget is None else max(it, int((time.time() - t0) / budget * iterations))
        losses.append(step(lr_at(at, iterations, base_lr)))
        it += 1
        report(name, it, iterations, sum(losses[-20:]) / len(losses[-20:]))
        if it % every == 0 and it < iterations:
            run.save(checkpoint, it, time.time() - t0)
    elapsed = time.time() - t0
    run.save(checkpoint, it, elapsed)
    if run.sampler.tumor_cfg is not None:
        log(f"stage '{name}': {run.sampler.inserted} synthetic tumors inserted")
    return {"state_dict": {k: v.detach().cpu().contiguous() for k, v in run.net.state_dict().items()},
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




def partner_setting(config: dict) -> Tuple[bool, Optional[List[str]]]:
    """The config's ``phase_partner_labels``: false, true (every class the partner annotates) or
    a list of class names the borrowed phases are supervised on -> (use them, classes or None)."""
    value = config.get("phase_partner_labels", False)
    if isinstance(value, bool):
        return value, None
    if isinstance(value, list) and value and all(name in CHANNELS for name in value):
        return True, list(value)
    raise InputError(f"training config: 'phase_partner_labels' is {json.dumps(value)}",
                     f"use true, false or a list of classes such as [\"liver\"] ({', '.join(CHANNELS)})")


# ----------------------------------------------------------------------------- a whole run
def _prepare_data(options: TrainOptions, config: dict, wanted: set, synth: bool, partners: bool,
                  log: LogFn) -> tuple:
    """(manifest entries by id, cache folder): the manifest's cases cached on the stage grids
    (a missing manifest is fine when the cache is already there)."""
    from .dataset import build_cache

    cache = Path(options.cache or config.get("cache", ".traindata"))
    entries = {}
    if Path(options.manifest).is_file():
        manifest = load_manifest(options.manifest)
        entries = {c["id"]: c for c in manifest["cases"]}
        build_cache(manifest, cache, [s for s in config["stages"] if s["name"] in wanted], synth=synth,
                    partners=partners, log=log, register=bool(config.get("phase_partner_registration", False)))
    elif not cache.is_dir():
        raise InputError(f"manifest '{options.manifest}' not found and no cache at '{cache}'",
                         "give the data manifest.json")
    return entries, cache


def _warm_start(options: TrainOptions, stage: dict) -> Optional[Path]:
    if not options.init_from:
        return None
    init = Path(options.init_from) / f"{stage['name']}.pt"
    if not init.is_file():
        raise InputError(f"no weights '{init}' to warm-start stage '{stage['name']}' from",
                         "warm-start from a model folder holding <stage>.pt")
    return init


def _stage_record(result: Dict, real_ids: List[str], n_cases: int, planned: int,
                  init: Optional[Path], stage_name: str) -> Dict:
    """The card's training record of one stage."""
    synthetic = n_cases - len(real_ids)
    if init is not None:  # the warm start's training cases count as seen (cross-validation)
        real_ids = sorted(set(real_ids) | set(_card_cases(init.parent, stage_name)))
    tail = result["losses"][-50:]
    record = {"cases": real_ids, "synthetic_cases": synthetic, "iterations": result["iterations"],
              "iterations_planned": planned, "seconds": round(result["seconds"], 1),
              "final_loss": round(sum(tail) / max(1, len(tail)), 4), "complete": result["complete"]}
    if init is not None:
        record["warm_start"] = str(init)
    return record


def _train_one(options: TrainOptions, config: dict, stage: dict, seed: int, context: dict,
               log: LogFn, progress: Optional[StepFn]) -> Dict:
    """Train ``stage``, write ``<stage>.pt`` and its records; returns the stage's card record."""
    from ..segmentation.inputs import cached_inputs, stage_inputs_of
    from .dataset import load_cached, slice_spacing_mm

    out, device, entries = Path(options.out), context["device"], context["entries"]
    cases = load_cached(context["cache"] / stage["name"], exclude=context["excluded"], synth=context["synth"],
                        extras=cached_inputs(stage_inputs_of(stage)[1:]),
                        partners=context["partners"][0], partner_classes=context["partners"][1])
    for case in cases:  # contrast phase (and slice spacing) drive the synthetic tumors' look
        case["phase"] = entries.get(case["id"], {}).get("phase")
        if stage.get("tumor_slice_profile"):  # a header read per case, only where it is used
            case["slice_mm"] = slice_spacing_mm(context["root"], entries.get(case["id"]))
    real_ids = [c["id"] for c in cases if not c["id"].startswith("synth-")]
    iterations = int(round(stage["iterations"] * options.iterations_scale))
    ckpt = out / "checkpoints" / f"{stage['name']}.ckpt"
    if options.restart and ckpt.exists():
        ckpt.unlink()
    log(f"stage '{stage['name']}': {len(real_ids)} real + {len(cases) - len(real_ids)} synthetic "
        f"cases, {iterations} iterations on {device}")
    init = _warm_start(options, stage)
    result = train_stage(stage, cases, device, seed, iterations, ckpt, context["deadline"],
                         synth_fraction=config.get("synth_fraction", 0.3), progress=progress,
                         log=log, init_weights=init)
    _atomic_torch_save(result["state_dict"], out / f"{stage['name']}.pt")
    record = _stage_record(result, real_ids, len(cases), iterations, init, stage["name"])
    (out / f"losses-{stage['name']}.json").write_text(json.dumps(result["losses"]))
    (out / f"training-{stage['name']}.json").write_text(json.dumps(record))
    return record


def _training_records(out: Path, stages: List[dict], results: Dict) -> Dict:
    """Every stage's record: this run's, then earlier runs' (e.g. ``stages=["fine"]``)."""
    previous = {}
    if (out / "model.json").is_file():
        previous = json.loads((out / "model.json").read_text()).get("training", {}).get("stages", {})
    for stage in stages:
        record = out / f"training-{stage['name']}.json"
        if stage["name"] not in results and record.is_file():
            previous[stage["name"]] = json.loads(record.read_text())
    previous.update(results)
    return previous


def _write_model_card(options: TrainOptions, config: dict, results: Dict, context: dict,
                      seed: int) -> Optional[Path]:
    """``model.json`` once every stage has weights (None before)."""
    out, stages, entries = Path(options.out), config["stages"], context["entries"]
    card_stages = []
    for stage in stages:
        if not (out / f"{stage['name']}.pt").is_file():
            return None
        entry = {k: stage[k] for k in ("name", "network", "spacing_mm", "window_hu", "patch_size")}
        entry["weights"] = f"{stage['name']}.pt"
        if stage.get("roi"):
            entry["roi"] = stage["roi"]
        if stage.get("inputs"):
            entry["inputs"] = list(stage["inputs"])
        card_stages.append(entry)
    records = _training_records(out, stages, results)
    train_ids = sorted({i for r in records.values() for i in r.get("cases", [])})
    license_text = "Weights trained on: " + ", ".join(
        f"{i} ({entries[i]['license']})" if i in entries else i for i in train_ids)
    if any(i.startswith("ircadb") for i in train_ids) or context["synth"]:
        license_text = NONCOMMERCIAL + " " + license_text
    card = {"name": config.get("name", out.name), "stages": card_stages,
            "inference": config.get("inference", {}), "postprocess": config.get("postprocess", {}),
            "training": {"config": config, "seed": seed, "synthetic_from_label_only": context["synth"],
                         "excluded": sorted(context["excluded"]), "hardware": _hardware(context["device"]),
                         "stages": records},
            "license": license_text}
    write_card(out, card)
    return out


def train(options: TrainOptions, log: LogFn = _logger.info,
          progress: Optional[StepFn] = None) -> Optional[Path]:
    """Train the config's stages (or ``options.stages``) and write the model folder; returns it,
    or None while some stage still lacks weights (no card yet)."""
    config = json.loads(Path(options.config).read_text(encoding="utf-8"))
    seed = int(options.seed if options.seed is not None else config.get("seed", 0))
    synth = bool(config.get("synth", True)) and options.synth
    out = Path(options.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    wanted = set(options.stages) if options.stages else {s["name"] for s in config["stages"]}
    partners = partner_setting(config)
    entries, cache = _prepare_data(options, config, wanted, synth, partners[0], log)
    context = {"entries": entries, "cache": cache, "synth": synth, "partners": partners,
               "root": Path(options.manifest).resolve().parent,  # the manifest's CT paths start here
               # a study's phases leave a fold together
               "excluded": with_partners(list(entries.values()), options.exclude),
               "device": select_device(options.device),
               "deadline": time.time() + 60 * options.max_minutes if options.max_minutes else None}
    results = {}
    for index, stage in enumerate(config["stages"]):
        if stage["name"] in wanted:
            results[stage["name"]] = _train_one(options, config, stage, seed + index, context, log,
                                                progress)
    folder = _write_model_card(options, config, results, context, seed)
    if folder is not None:
        log(f"model folder written: {folder}")
    return folder
