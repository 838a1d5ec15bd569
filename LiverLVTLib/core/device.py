"""The compute device: one choice rule for the CLI, training, the background job and the module.

``auto`` takes the CUDA GPU when PyTorch sees one (and, where a minimum is asked for, it has
enough memory), else the CPU and says why; asking for the GPU without a usable one is a clear
:class:`InputError`. ``cuda:N`` names one GPU of several (training machines).
"""
from __future__ import annotations

import importlib
import re
from typing import Tuple

from .errors import InputError
from .options import DEVICES

MIN_GPU_GIB = 4.0  # what the Slicer module asks of a GPU before it uses it


def resolve_device(choice: str = "auto", torch_module=None, min_gpu_gib: float = 0.0) -> Tuple[str, str]:
    """(device name for torch, note for the user or "") for ``choice`` (auto, cpu, cuda, cuda:N)."""
    choice = (choice or "auto").lower()
    if choice not in DEVICES and not re.fullmatch(r"cuda:\d+", choice):
        raise InputError(f"unknown device '{choice}'", "choose auto, cpu or cuda")
    if choice == "cpu":
        return "cpu", ""
    try:
        torch = torch_module or importlib.import_module("torch")
        has_cuda = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - torch missing or broken: the CPU path still tells why
        torch, has_cuda = None, False
    if not has_cuda:
        if choice != "auto":
            raise InputError("the GPU (CUDA) was asked for but PyTorch sees no CUDA GPU on this computer",
                             "choose the CPU (or auto), or install a CUDA build of PyTorch (in Slicer: "
                             "with the PyTorch extension)")
        return "cpu", "No CUDA GPU available: running on the CPU (several minutes)."
    if min_gpu_gib:
        index = int(choice.split(":")[1]) if ":" in choice else 0
        total = torch.cuda.get_device_properties(index).total_memory / 2 ** 30
        if total < min_gpu_gib:
            if choice != "auto":
                raise InputError(f"the GPU has {total:.1f} GiB of memory, LiverLVT needs at least "
                                 f"{min_gpu_gib:.0f} GiB", "choose the CPU (or auto)")
            return "cpu", f"The GPU has only {total:.1f} GiB: running on the CPU."
    return ("cuda" if choice == "auto" else choice), ""


def select_device(choice: str = "auto", min_gpu_gib: float = 0.0):
    """The ``torch.device`` for ``choice`` (see :func:`resolve_device`)."""
    import torch

    return torch.device(resolve_device(choice, torch, min_gpu_gib)[0])


def cpu_has_native_bf16(torch_module=None) -> bool:
    """True where this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles). Elsewhere
    (AVX2-only CPUs, e.g. many AMD EPYC and older Intel) PyTorch emulates bf16 and autocast is
    not faster but far slower: measured 40.6 s vs 2.9 s per fine-stage training step on an
    AVX2 EPYC (benchmarks/bench_train_step.py), so bf16 is used only where it is native."""
    torch = torch_module or importlib.import_module("torch")
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
