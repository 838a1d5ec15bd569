"""Benchmark: ``liverlvt segment`` with and without the analysis, in one run on one CT.

Prints, measured in the same run under the same load (and the load average it ran under):

* the whole ``segment`` (network + analysis, models, report) as a fresh process, wall time and
  that process's peak RSS;
* the ``--no-analysis`` run as a fresh process, wall time and peak RSS, and the ratio of the two
  (``--rounds`` interleaved pairs, medians: the load of a shared machine drifts);
* the stages of one in-process ``segment`` with analysis: read, network (both model stages),
  post-process (clean-up and back to the CT grid, from the engine's progress callback),
  analysis, meshes, report, write (labels, measurements.json, lesions.csv, models).

Asserts nothing (targets are checked by reading the figures). The nnU-Net-class baseline
(MONAI DynUNet 32->320, 128^3 patches, 0.5 overlap, timed on ``--baseline-windows`` windows and
extrapolated) is off by default: it adds about a minute on 2 cores; ``--baseline-windows 2``.

    nice .venv/bin/python benchmarks/bench_segment.py [--ct ../shared/data/cases/ircadb-1.1/ct.nii.gz]
        [--compare-model runs/v5-a]   # a candidate model's segment --no-analysis, same rounds
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_CT = REPO.parent / "shared" / "data" / "cases" / "ircadb-1.1" / "ct.nii.gz"


def run_segment(ct: Path, device: str, tta: bool, analysis: bool = False, model=None) -> dict:
    """Run the real CLI in a fresh process; wall time and that process's own peak RSS."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "LiverLVTLib", "segment", str(ct), "--out", out,
               "--device", device, "--progress-lines", "--tta" if tta else "--no-tta"]
        cmd += [] if analysis else ["--no-analysis"]
        cmd += ["--model", str(model)] if model else []
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        err = child.stderr.read().decode(errors="replace")
        child.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 1024 ** 2,
            "load": os.getloadavg()[0]}


class _StageClock:
    """Progress callback that notes when the engine enters each stage."""

    def __init__(self):
        self.marks = []

    def __call__(self, stage: str, fraction: float) -> None:
        self.marks.append((time.perf_counter(), stage, fraction))

    def first(self, prefix: str, fraction=None) -> float:
        return next(t for t, stage, f in self.marks
                    if stage.startswith(prefix) and (fraction is None or f == fraction))


def staged_segment(ct_path: Path, device: str) -> dict:
    """One in-process ``segment`` with analysis, timed stage by stage (as ``write_analysis``
    runs them, with the lesion masks shared by meshes and report)."""
    import SimpleITK as sitk

    from LiverLVTLib.analysis.lesions import lesion_masks
    from LiverLVTLib.analysis.measure import analyze_case
    from LiverLVTLib.core import io
    from LiverLVTLib.outputs.meshes import build_surfaces, write_surfaces
    from LiverLVTLib.outputs.report import write_report
    from LiverLVTLib.outputs.writer import write_analysis
    from LiverLVTLib.segmentation.pipeline import segment_ct

    times, clock = {}, _StageClock()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        ct = io.read_ct(ct_path)
        t1 = time.perf_counter()
        labels = segment_ct(ct, device=device, tta=False, progress=clock)
        t2 = time.perf_counter()
        times["read"] = t1 - t0
        times["network"] = clock.first("postprocess", 0.0) - t1
        times["post-process"] = t2 - clock.first("postprocess", 0.0)
        start = time.perf_counter()
        result = analyze_case(ct, labels)
        times["analysis"] = time.perf_counter() - start
        start = time.perf_counter()
        shared = {}  # the lesion masks shared by meshes and report (revisions that take them)
        if "masks" in inspect.signature(build_surfaces).parameters:
            shared["masks"] = lesion_masks(sitk.GetArrayViewFromImage(labels), result["lesions"])
        surfaces = build_surfaces(labels, result, **shared)
        times["meshes"] = time.perf_counter() - start
        start = time.perf_counter()
        write_report(result, ct, labels, Path(out) / "report.html", surfaces, **shared)
        times["report"] = time.perf_counter() - start
        start = time.perf_counter()
        io.write_image(labels, Path(out) / "labels.nii.gz")
        write_analysis(result, ct, labels, out, models=False, report=False)
        write_surfaces(surfaces, io.ensure_output_dir(Path(out) / "models"))
        times["write"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return {"stages_s": times, "lesions": len(result["lesions"]), "load": os.getloadavg()[0]}


def run_baseline(ct: Path, device: str, windows: int) -> dict:
    import numpy as np
    import SimpleITK as sitk
    import torch
    from monai.networks.nets import DynUNet

    from LiverLVTLib.core.preprocess import canonical, normalize
    from LiverLVTLib.segmentation.inference import count_windows

    torch.manual_seed(0)
    net = DynUNet(3, 1, 3, kernel_size=[3] * 6, strides=[1, 2, 2, 2, 2, 2],
                  upsample_kernel_size=[2] * 5, filters=[32, 64, 128, 256, 320, 320],
                  norm_name="instance").to(device).eval()
    start = time.perf_counter()
    image = canonical(sitk.ReadImage(str(ct), sitk.sitkFloat32))
    volume = normalize(sitk.GetArrayViewFromImage(image), (-200, 300))
    prep = time.perf_counter() - start
    patch = (128, 128, 128)
    total = count_windows(volume.shape, patch, 0.5)
    x = torch.from_numpy(np.ascontiguousarray(volume[:128, :128, :128]))[None, None].to(device)
    times = []
    with torch.inference_mode():
        for _ in range(windows):
            t0 = time.perf_counter()
            net(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    per_window = float(np.median(times))
    return {"prep_s": prep, "per_window_s": per_window, "windows": total,
            "extrapolated_wall_s": prep + per_window * total, "timed_windows": windows}


def _print(figures: dict) -> None:
    full, bare = figures["segment"], figures["segment_no_analysis"]
    print(f"segment with analysis (process):  median {full['wall_s']:6.1f} s {full['walls_s']}, "
          f"peak RSS {full['peak_rss_gb']:.2f} GB  (load {full['load']:.2f})")
    print(f"segment --no-analysis (process):  median {bare['wall_s']:6.1f} s {bare['walls_s']}, "
          f"peak RSS {bare['peak_rss_gb']:.2f} GB  (load {bare['load']:.2f})")
    print(f"ratio of the medians, with / without analysis: {figures['ratio']:.2f}x")
    staged = figures["stages"]
    print(f"stages of one in-process segment ({staged['lesions']} lesions, load "
          f"{staged['load']:.2f}):")
    for name, seconds in staged["stages_s"].items():
        print(f"  {name:13s} {seconds:6.2f} s")
    times = staged["stages_s"]
    segmentation = times["read"] + times["network"] + times["post-process"]
    print(f"in-process ratio, all stages / (read + network + post-process): "
          f"{times['total'] / segmentation:.2f}x")
    other = figures.get("compare_model")
    if other:
        print(f"segment --no-analysis with {other['model']}: median {other['wall_s']:6.1f} s "
              f"{other['walls_s']}, peak RSS {other['peak_rss_gb']:.2f} GB; ratio to the shipped "
              f"model's runs of the same rounds {other['ratio']:.2f}x")
    base = figures.get("baseline_dynunet_32_320")
    if base:
        print(f"baseline DynUNet 32->320, 128^3, 0.5: {base['extrapolated_wall_s']:.0f} s "
              f"(extrapolated: {base['windows']} windows x {base['per_window_s']:.2f} s, timed "
              f"on {base['timed_windows']}); speed-up of --no-analysis "
              f"{base['extrapolated_wall_s'] / bare['wall_s']:.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation on")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved runs of each process (medians are printed)")
    parser.add_argument("--baseline-windows", type=int, default=0,
                        help="time the DynUNet baseline on this many windows (0: skip)")
    parser.add_argument("--compare-model", type=Path, default=None,
                        help="also time 'segment --no-analysis' with this model folder, interleaved")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.ct.exists():
        print(f"benchmark skipped: {args.ct} not found (needs ../shared/data)")
        return 0
    print(f"CT {args.ct}, device {args.device}, load average at start {os.getloadavg()[0]:.2f}",
          flush=True)
    figures = {"ct": str(args.ct), "device": args.device, "runs": []}
    for _ in range(args.rounds):  # interleaved, so a change of load hits both
        figures["runs"].append({"segment_no_analysis": run_segment(args.ct, args.device, args.tta),
                                "segment": run_segment(args.ct, args.device, args.tta,
                                                       analysis=True)})
        if args.compare_model:
            figures["runs"][-1]["compare_model"] = run_segment(args.ct, args.device, args.tta,
                                                               model=args.compare_model)
    for key in ("segment_no_analysis", "segment"):
        runs = [run[key] for run in figures["runs"]]
        figures[key] = {"wall_s": statistics.median(r["wall_s"] for r in runs),
                        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
                        "load": statistics.mean(r["load"] for r in runs),
                        "walls_s": [round(r["wall_s"], 1) for r in runs]}
    figures["ratio"] = figures["segment"]["wall_s"] / figures["segment_no_analysis"]["wall_s"]
    if args.compare_model:
        runs = [run["compare_model"] for run in figures["runs"]]
        figures["compare_model"] = {"model": str(args.compare_model),
                                    "wall_s": statistics.median(r["wall_s"] for r in runs),
                                    "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
                                    "walls_s": [round(r["wall_s"], 1) for r in runs]}
        figures["compare_model"]["ratio"] = (figures["compare_model"]["wall_s"]
                                             / figures["segment_no_analysis"]["wall_s"])
    figures["stages"] = staged_segment(args.ct, args.device)
    if args.baseline_windows > 0:
        figures["baseline_dynunet_32_320"] = run_baseline(args.ct, args.device,
                                                          args.baseline_windows)
    _print(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
