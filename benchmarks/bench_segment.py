"""Benchmark: end-to-end ``liverlvt segment`` wall time and peak memory on a real CT, next to an
nnU-Net-class baseline (MONAI DynUNet 32->320, 128^3 patches at the CT's native spacing, 0.5
overlap, as nnU-Net's 3d_fullres would run) measured on the same input in the same run.

Prints numbers; asserts nothing (speed targets are checked by reading these figures).
The baseline's full sliding-window pass takes tens of minutes on 2 CPU cores, so it is timed on
``--baseline-windows`` windows and extrapolated to the number of windows the whole CT needs
(per-window cost is constant in sliding-window inference); the output says so.

    .venv/bin/python benchmarks/bench_segment.py [--ct ../shared/data/cases/ircadb-1.1/ct.nii.gz]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_CT = REPO.parent / "shared" / "data" / "cases" / "ircadb-1.1" / "ct.nii.gz"


def run_segment(ct: Path, device: str, tta: bool) -> dict:
    """Run the real CLI in a fresh process; wall time and that process's peak RSS."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "LiverLVTLib", "segment", str(ct), "--out", out,
               "--device", device, "--no-analysis", "--progress-lines", "--tta" if tta else "--no-tta"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "peak_rss_gb": max(peak_kb, before) / 1024 ** 2}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--baseline-windows", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.ct.exists():
        print(f"benchmark skipped: {args.ct} not found (needs ../shared/data)")
        return 0
    ours = run_segment(args.ct, args.device, tta=False)
    ours_tta = run_segment(args.ct, args.device, tta=True)
    base = run_baseline(args.ct, args.device, args.baseline_windows)
    figures = {"ct": str(args.ct), "device": args.device, "liverlvt": ours,
               "liverlvt_tta": ours_tta, "baseline_dynunet_32_320": base,
               "speedup_vs_baseline": base["extrapolated_wall_s"] / ours["wall_s"],
               "speedup_tta_vs_baseline": base["extrapolated_wall_s"] / ours_tta["wall_s"]}
    print(f"LiverLVT segment ({args.device}):        {ours['wall_s']:.1f} s, peak RSS {ours['peak_rss_gb']:.2f} GB")
    print(f"LiverLVT segment + flip TTA:           {ours_tta['wall_s']:.1f} s, peak RSS {ours_tta['peak_rss_gb']:.2f} GB")
    print(f"baseline DynUNet 32->320, 128^3, 0.5:  {base['extrapolated_wall_s']:.0f} s "
          f"(extrapolated: {base['windows']} windows x {base['per_window_s']:.2f} s, "
          f"timed on {base['timed_windows']})")
    print(f"speed-up vs baseline: {figures['speedup_vs_baseline']:.1f}x "
          f"(with TTA {figures['speedup_tta_vs_baseline']:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
