"""Benchmark: the analysis of a CT whose liver holds 20 lesions, and the Slicer module's
Recompute after a Segment Editor edit on a real CT.

* ``many``: the phantom (default grid, 0.8 x 0.8 x 2.5 mm) with 20 tumors of 8-26 mm placed
  inside its liver; times ``analyze_case`` (target < 10 s) and the models + report written
  after it, with the load average they ran under.
* ``recompute``: ircadb-1.1's CT and reference labels in a headless Slicer scene (slicer-core
  wheel, Slicer's own MRML classes) through :class:`LiverLVTLib.app.workflow.CaseWorkflow`:
  Apply (analysis + nodes), then one lesion erased in the Liver tumor segment (as Segment
  Editor does) and Recompute timed (target < 5 s). Skipped without slicer-core or the data.
* ``ab`` (with ``--before CHECKOUT``): ``liverlvt analyze`` (analysis, models, report) of
  ``--labels`` on ircadb-1.1's CT as fresh processes of another checkout and of this one,
  interleaved ``--rounds`` times: the medians and their ratio (before/after under one load).

    nice .venv/bin/python benchmarks/bench_analysis.py [many|recompute|ab]... [--before ../main]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CASE = REPO.parent / "shared" / "data" / "cases" / "ircadb-1.1"


def twenty_lesion_phantom(count: int = 20, seed: int = 0):
    """The default phantom with ``count`` tumors inside its liver (each >= 4 mm from the liver
    surface and from one another), placed by farthest-point sampling of the liver."""
    import SimpleITK as sitk
    from scipy import ndimage

    from LiverLVTLib.analysis.lesions import Grid
    from LiverLVTLib.synthetic.phantom import Lesion, make_phantom

    empty = make_phantom(seed, lesions=[], noise_hu=0.0, blur=False)
    lab = sitk.GetArrayViewFromImage(empty.labels)
    grid = Grid.of(empty.labels)
    depth = ndimage.distance_transform_edt(lab > 0, sampling=grid.spacing[::-1])
    rng = np.random.default_rng(seed)
    diameters = rng.uniform(8.0, 26.0, count)
    centres = []
    for d in sorted(diameters, reverse=True):
        inside = np.argwhere(depth >= d / 2 + 4.0)
        pts = grid.to_lps(inside[:, ::-1].astype(float))
        if centres:
            gap = np.min([np.linalg.norm(pts - c[0], axis=1) - c[1] / 2 for c in centres], axis=0)
            ok = gap >= d / 2 + 4.0
            pts, gap = pts[ok], gap[ok]
            pick = pts[int(np.argmax(gap))] if len(pts) else None
        else:
            pick = pts[len(pts) // 2]
        if pick is not None:
            centres.append((pick, d))
    lesions = [Lesion(tuple(float(v) for v in c), (d, d * 0.85, d * 0.9), "tumor", 50.0, 0.0, f"t{i}")
               for i, (c, d) in enumerate(centres)]
    return make_phantom(seed, lesions=lesions)


def bench_many() -> None:
    from LiverLVTLib.analysis.measure import analyze_case
    from LiverLVTLib.outputs.writer import write_analysis

    phantom = twenty_lesion_phantom()
    size = phantom.ct.GetSize()
    start = time.perf_counter()
    result = analyze_case(phantom.ct, phantom.labels)
    analysis = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        write_analysis(result, phantom.ct, phantom.labels, out)
        outputs = time.perf_counter() - start
    print(f"20-lesion phantom {size[0]}x{size[1]}x{size[2]}: {len(result['lesions'])} lesions "
          f"found; analyze_case {analysis:.2f} s (target < 10 s), models + report + files "
          f"{outputs:.2f} s  (load {os.getloadavg()[0]:.2f})")


def bench_recompute() -> None:
    try:
        import slicer  # noqa: F401
    except ImportError:
        print("recompute skipped: slicer-core is not installed")
        return
    if not (CASE / "ct.nii.gz").exists():
        print(f"recompute skipped: {CASE} not found")
        return
    import SimpleITK as sitk

    from LiverLVTLib.analysis.measure import analyze_case
    from LiverLVTLib.app.selftest import erase_one_lesion
    from LiverLVTLib.app.workflow import CaseWorkflow
    from LiverLVTLib.core.io import read_ct
    from LiverLVTLib.mrml import convert as mc
    from LiverLVTLib.mrml.headless import create_headless_slicer

    ct = read_ct(CASE / "ct.nii.gz")
    labels = sitk.ReadImage(str(CASE / "labels.nii.gz"))
    app = create_headless_slicer()
    try:
        volume = mc.volume_node_from_image(app.scene, ct, "ircadb-1.1")
        logic = CaseWorkflow.for_scene(app.scene, app.segmentations_logic,
                                       segmenter=lambda image, **_: labels, analyzer=analyze_case)
        start = time.perf_counter()
        result = logic.process(volume)
        apply_s = time.perf_counter() - start
        erase_one_lesion(logic.scene_logic, result, ct, labels)
        start = time.perf_counter()
        again = logic.recompute(result.segmentation_node)
        recompute_s = time.perf_counter() - start
    finally:
        app.clear()
    print(f"Slicer module on ircadb-1.1 ({len(result.measurements['lesions'])} lesions): Apply "
          f"with given labels {apply_s:.2f} s; Recompute after erasing one lesion "
          f"{recompute_s:.2f} s (target < 5 s), {len(again.measurements['lesions'])} lesions  "
          f"(load {os.getloadavg()[0]:.2f})")


def _analyze_process(checkout: Path, labels: Path) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "LiverLVTLib", "analyze", str(CASE / "ct.nii.gz"),
                        str(labels), "--out", out], cwd=checkout, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def bench_ab(before: Path, labels: Path, rounds: int) -> None:
    if not (CASE / "ct.nii.gz").exists() or not labels.exists():
        print(f"ab skipped: {CASE} or {labels} not found")
        return
    times = {"before": [], "after": []}
    for _ in range(rounds):
        for name, checkout in (("before", before), ("after", REPO)):
            times[name].append(_analyze_process(checkout, labels))
    b, a = float(np.median(times["before"])), float(np.median(times["after"]))
    print(f"liverlvt analyze {labels.name} as a process, {rounds} interleaved rounds: before "
          f"({before}) median {b:.1f} s {['%.1f' % t for t in times['before']]}, after median "
          f"{a:.1f} s {['%.1f' % t for t in times['after']]}: after/before {a / b:.2f}  "
          f"(load {os.getloadavg()[0]:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help="many, recompute, ab (default: many recompute)")
    parser.add_argument("--before", type=Path, help="the other checkout for ab")
    parser.add_argument("--labels", type=Path, default=CASE / "labels.nii.gz",
                        help="label map on ircadb-1.1's CT for ab (default: the reference)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    args.which = args.which or ["many", "recompute"]
    print(f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    for name in args.which:
        if name == "ab" and args.before is None:
            print("ab skipped: give --before CHECKOUT")
        elif name == "ab":
            bench_ab(args.before.resolve(), args.labels.resolve(), args.rounds)
        else:
            {"many": bench_many, "recompute": bench_recompute}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
