"""``liverlvt train``: train the liver/vessel/tumor network on a data manifest and write a model
folder (:mod:`LiverLVTLib.training.train`; progress bar per stage unless ``--quiet``)."""
from __future__ import annotations

from pathlib import Path

from ..training.train import DEFAULT_CONFIG, TrainOptions, train
from .progress import TrainBars


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


def options_from(args) -> TrainOptions:
    return TrainOptions(
        manifest=Path(args.manifest), out=Path(args.out), config=Path(args.config),
        cache=Path(args.cache) if args.cache else None, exclude=list(args.exclude),
        stages=args.stages.split(",") if args.stages else None, device=args.device,
        iterations_scale=args.iterations_scale, synth=not args.no_synth,
        max_minutes=args.max_minutes, restart=args.restart, seed=args.seed,
        init_from=Path(args.init_from) if getattr(args, "init_from", None) else None)


def run(args) -> int:
    bars = None if args.quiet else TrainBars()
    try:
        train(options_from(args), log=lambda msg: print(msg, flush=True), progress=bars)
    finally:
        if bars is not None:
            bars.close()
    return 0
