"""``liverlvt analyze CT LABELS``: per-lesion measurements, vessel contact, volumes, staging,
surface models and the HTML report from a CT and a label map on its grid (0 background,
1 liver, 2 hepatic vessel, 3 tumor), e.g. the model's or a radiologist's corrected one.
Everything is checked before the output folder is touched, which then receives the whole new
result set at once (:mod:`.folder`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Tuple

import SimpleITK as sitk

from ..analysis.measure import analyze_case
from ..analysis.volumetry import volumes
from ..core.io import case_name, read_ct, read_labels
from ..core.options import AnalysisOptions
from ..outputs.writer import write_analysis
from .arguments import add_analysis_arguments, add_output_arguments
from .folder import Run, after_landing, check_scene_path, results_run


def add_arguments(parser) -> None:
    parser.add_argument("ct", metavar="CT", help="CT volume (NIfTI/NRRD/MHA or DICOM folder)")
    parser.add_argument("labels", metavar="LABELS",
                        help="label map on the CT grid: 0 bg, 1 liver, 2 hepatic vessel, 3 tumor")
    parser.add_argument("--out", default=None,
                        help="output folder (default: outputs/<CT name>-analysis)")
    add_analysis_arguments(parser)
    add_output_arguments(parser)


def default_out(ct_path: str) -> Path:
    return Path("outputs") / f"{case_name(ct_path)}-analysis"


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="liverlvt: %(message)s")
    options = AnalysisOptions.from_namespace(args)
    scene = check_scene_path(args.scene)
    ct = read_ct(args.ct)
    labels = read_labels(args.labels, ct)
    volumes(sitk.GetArrayViewFromImage(labels), 1.0)  # no liver: refused before the folder is touched
    out = Path(args.out) if args.out else default_out(args.ct)
    with results_run(out, scene, inputs=(args.ct, args.labels)) as folder:
        result, paths = analyze_into(args, options, ct, labels, folder, ct_name=case_name(args.ct))
    with after_landing(folder):
        print_summary(result, paths, folder.out)
    return 0


def analyze_into(args, options: AnalysisOptions, ct: sitk.Image, labels: sitk.Image, run: Run,
                 ct_name: str = "CT") -> Tuple[Dict, Dict]:
    """Analyze and write the outputs (and the scene bundle with ``--scene``) into the run;
    returns (measurements, the outputs' final paths)."""
    result = analyze_case(ct, labels, options)
    paths = write_analysis(result, ct, labels, run.stage, models=not args.no_models,
                           report=not args.no_report)
    paths = run.final_paths(paths)
    if run.scene is not None:
        from ..app.scene_bundle import write_scene_bundle

        write_scene_bundle(ct, labels, result, run.scene, ct_name=ct_name, name=Path(args.scene).stem)
        paths["scene"] = str(args.scene)
    return result, paths


def print_summary(result: Dict, paths: Dict, out) -> None:
    paper, ajcc = result["staging"]["paper"], result["staging"]["ajcc8"]
    kinds = [les["classification"] for les in result["lesions"]]
    print(f"liver {result['liver']['volume_ml']:.0f} mL, {kinds.count('tumor')} tumor(s), "
          f"{kinds.count('indeterminate')} indeterminate, {kinds.count('cyst')} cyst(s); "
          f"tumor burden {result['tumor_burden_percent']:.1f} %")
    print(f"seed-paper stage {paper['stage']}; AJCC 8th {ajcc['T']} {ajcc['N']} {ajcc['M']}"
          + (f", stage {ajcc['stage_group']}" if ajcc["stage_group"] else ""))
    print(f"outputs in {out}:")
    for key, value in paths.items():
        if key == "models":
            print(f"  models: {len(value)} files in {Path(value[0]).parent if value else out}")
        else:
            print(f"  {key}: {value}")
