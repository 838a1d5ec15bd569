"""``liverlvt demo``: the whole pipeline on the built-in phantom abdomen: build the phantom CT,
segment it with the shipped model, analyze and stage the result, and print where the outputs are
together with the Dice of the model's liver against the phantom's exact truth. The output folder
receives the whole new result set at once (:mod:`.folder`)."""
from __future__ import annotations

import logging

from ..app.demo import check_seed, liver_dice, make_demo_phantom, write_phantom_files
from .analyze import print_summary
from .arguments import add_analysis_arguments, add_output_arguments, add_run_arguments, add_segment_arguments
from .folder import after_landing, results_run
from .segment import check_run, segment_and_analyze


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="liverlvt-demo", help="output folder (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="phantom random seed, 0 or more (default %(default)s)")
    add_segment_arguments(parser)
    add_run_arguments(parser)
    add_analysis_arguments(parser)
    add_output_arguments(parser)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    check_seed(args.seed)
    options, analysis, scene = check_run(args)
    phantom = make_demo_phantom(args.seed)
    with results_run(args.out, scene, inputs=(options.model_dir,)) as folder:
        ct_path, truth_path = write_phantom_files(phantom, folder.stage)
        print(f"phantom CT: {folder.final(ct_path)}  (truth: {folder.final(truth_path)})")
        labels, result, paths = segment_and_analyze(args, options, analysis, phantom.ct, folder,
                                                    ct_name="Phantom CT")
        which = f"the model in {options.model_dir}" if options.model_dir else "the shipped model"
        print(f"liver Dice of {which} against the phantom truth: "
              f"{liver_dice(labels, phantom.labels):.3f}")
    with after_landing(folder):
        if result is not None:
            print_summary(result, paths, folder.out)
        print(f"outputs: {folder.out}")
    return 0

