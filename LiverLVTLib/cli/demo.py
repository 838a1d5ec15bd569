"""``liverlvt demo``: the whole pipeline on the built-in phantom abdomen: build the phantom CT,
segment it with the shipped model, analyze and stage the result, and print where the outputs are
together with the Dice of the model's liver against the phantom's exact truth."""
from __future__ import annotations

import logging
from pathlib import Path

from ..app.demo import liver_dice, write_phantom_case
from ..core import io
from ..core.options import AnalysisOptions, SegmentOptions
from .arguments import add_analysis_arguments, add_output_arguments, add_run_arguments, add_segment_arguments
from .segment import analyze_segmented, segment_to_folder


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="liverlvt-demo", help="output folder (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="phantom random seed")
    add_segment_arguments(parser)
    add_run_arguments(parser)
    add_analysis_arguments(parser)
    add_output_arguments(parser)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    options = SegmentOptions.from_namespace(args)
    if not args.no_analysis:
        AnalysisOptions.from_namespace(args)  # a bad option fails before the long segmentation
    out_dir = io.ensure_output_dir(args.out)
    phantom, ct_path, truth_path = write_phantom_case(out_dir, seed=args.seed)
    print(f"phantom CT: {ct_path}  (truth: {truth_path})")
    labels = segment_to_folder(options, args.progress_lines, phantom.ct, out_dir)
    print(f"liver Dice of the shipped model against the phantom truth: "
          f"{liver_dice(labels, phantom.labels):.3f}")
    if not args.no_analysis:
        analyze_segmented(args, phantom.ct, labels, out_dir, ct_name="Phantom CT")
    print(f"outputs: {Path(out_dir).resolve()}")
    return 0
