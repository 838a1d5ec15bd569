"""Typed options (core.options): defaults in one place, validation in the engine's words, and the
command line built from them (to_args) parses back to the same options (from_namespace), also for
the background job's command lines. The device choice (core.device) and the engine's silence
(print only in the CLI)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from LiverLVTLib.app.background_job import SegmentationJob
from LiverLVTLib.cli.main import build_parser
from LiverLVTLib.core.device import resolve_device
from LiverLVTLib.core.errors import InputError
from LiverLVTLib.core.options import (
    CYST_RULES,
    M_VALUES,
    MAJOR_VESSEL_MM,
    N_VALUES,
    AnalysisOptions,
    SegmentOptions,
)

LIB = Path(__file__).resolve().parent.parent / "LiverLVTLib"


def test_defaults_and_choices():
    a = AnalysisOptions()
    assert (a.n, a.m, a.cyst_rule, a.major_vessel_mm) == ("NX", "MX", "acr", MAJOR_VESSEL_MM)
    assert a.n in N_VALUES and a.m in M_VALUES and a.cyst_rule in CYST_RULES
    s = SegmentOptions()
    assert (s.model_dir, s.device, s.tta, s.postprocess) == (None, "auto", None, True)
    assert a.as_settings() == {"n": "NX", "m": "MX", "cyst_rule": "acr", "major_vessel_mm": 5.0}


def test_normalised_and_built_from_dicts():
    assert AnalysisOptions(n="n0", m=" m1 ", major_vessel_mm=7).validate() == \
        AnalysisOptions("N0", "M1", "acr", 7.0)
    assert AnalysisOptions.of({"n": "N1", "unknown": 1}) == AnalysisOptions(n="N1")
    assert AnalysisOptions.of(AnalysisOptions(m="M0"), n="N0") == AnalysisOptions("N0", "M0")
    assert SegmentOptions.of(None, device="CPU").device == "cpu"
    with pytest.raises(TypeError):
        AnalysisOptions.of(None, stage=4)  # a misspelt option is not silently ignored


@pytest.mark.parametrize("options, words", [
    (AnalysisOptions(n="N7"), ("N category 'N7'", "N0, N1 or NX")),
    (AnalysisOptions(m="M9"), ("M category 'M9'", "M0, M1 or MX")),
    (AnalysisOptions(cyst_rule="maybe"), ("cyst rule 'maybe'", "acr, gaussian45 or off")),
    (AnalysisOptions(major_vessel_mm=-1.0), ("major-vessel threshold -1.0 mm", "e.g. 5")),
    (AnalysisOptions(major_vessel_mm=float("nan")), ("not a positive number",)),
    (SegmentOptions(device="tpu"), ("device 'tpu'", "auto, cpu or cuda")),
    (SegmentOptions(tta="yes"), ("test-time augmentation",)),
])
def test_validation_speaks_the_option_not_a_flag(options, words):
    with pytest.raises(InputError) as info:
        options.validate()
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "--" not in message and "Fix:" in message


@pytest.mark.parametrize("options", [
    SegmentOptions(),
    SegmentOptions(model_dir="/models/x", device="cpu", tta=True),
    SegmentOptions(device="cuda", tta=False, postprocess=False),
])
def test_segment_options_round_trip_through_the_cli(options):
    args = build_parser().parse_args(["segment", "ct.nii.gz", *options.to_args()])
    assert SegmentOptions.from_namespace(args) == options


@pytest.mark.parametrize("options", [
    AnalysisOptions(),
    AnalysisOptions(n="N1", m="M0", cyst_rule="gaussian45", major_vessel_mm=12.5),
    AnalysisOptions(cyst_rule="off", major_vessel_mm=0.5),
])
def test_analysis_options_round_trip_through_the_cli(options):
    for command in (["analyze", "ct.nii.gz", "labels.nii.gz"], ["segment", "ct.nii.gz"], ["demo"]):
        args = build_parser().parse_args([*command, *options.to_args()])
        assert AnalysisOptions.from_namespace(args) == options, command


def test_cli_defaults_are_the_options_defaults():
    parser = build_parser()
    args = parser.parse_args(["segment", "ct.nii.gz"])
    assert SegmentOptions.from_namespace(args) == SegmentOptions()
    assert AnalysisOptions.from_namespace(args) == AnalysisOptions()
    assert AnalysisOptions.from_namespace(parser.parse_args(["analyze", "a", "b"])) == AnalysisOptions()


def test_background_job_command_lines_parse_back(tmp_path):
    analysis = {"n": "N0", "m": "M1", "cyst_rule": "off", "major_vessel_mm": 8.0}
    job = SegmentationJob(tmp_path / "ct.nrrd", tmp_path / "out", device="cpu", model_dir=tmp_path,
                          tta=False, python="python", analysis=analysis)
    segment, analyze = job.commands()
    assert segment[:3] == ["python", "-m", "LiverLVTLib"] and analyze[:3] == segment[:3]
    seg_args = build_parser().parse_args(segment[3:])
    assert seg_args.no_analysis and seg_args.progress_lines
    assert SegmentOptions.from_namespace(seg_args) == SegmentOptions(str(tmp_path), "cpu", False)
    an_args = build_parser().parse_args(analyze[3:])
    assert an_args.no_models and an_args.no_report and an_args.labels == str(job.labels_path)
    assert AnalysisOptions.from_namespace(an_args) == AnalysisOptions.of(analysis)
    # defaults when the GUI gives none, and a bad option is refused before any process starts
    assert "--n" in SegmentationJob("ct", "out", analysis={}).commands()[1]
    with pytest.raises(InputError, match="N category"):
        SegmentationJob("ct", "out", analysis={"n": "N5"}).commands()


def test_device_choice():
    class NoGPU:
        class cuda:
            @staticmethod
            def is_available():
                return False

    assert resolve_device("cpu") == ("cpu", "")
    assert resolve_device("auto", NoGPU)[0] == "cpu"
    for choice in ("cuda", "cuda:1"):
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device(choice, NoGPU)
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0", NoGPU)


def _calls(path: Path, name: str):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name]


def test_print_only_in_the_cli():
    printing = {str(p.relative_to(LIB)): lines for p in sorted(LIB.rglob("*.py"))
                if "cli" not in p.relative_to(LIB).parts and (lines := _calls(p, "print"))}
    assert not printing, printing


ENGINE = ("core", "segmentation", "analysis", "outputs", "training", "evaluation", "synthetic", "cli")
DEFAULT_LITERALS = re.compile(r'''["'](NX|MX|acr)["']|major_vessel_mm[^,)\n]*=\s*5(\.0)?\b''')


def test_analysis_defaults_live_only_in_core_options():
    found = {}
    for package in ENGINE:
        for path in sorted((LIB / package).rglob("*.py")):
            if path == LIB / "core" / "options.py":
                continue
            hits = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                    if DEFAULT_LITERALS.search(line)]
            if hits:
                found[str(path.relative_to(LIB))] = hits
    assert not found, found


def test_bf16_only_where_the_cpu_has_it_natively():
    """Emulated bf16 (an AVX2-only CPU) ran a training step 14x slower than fp32: not used there."""
    from types import SimpleNamespace

    from LiverLVTLib.core.device import cpu_has_native_bf16

    def fake(avx512_bf16, amx):
        return SimpleNamespace(cpu=SimpleNamespace(_is_avx512_bf16_supported=lambda: avx512_bf16,
                                                   _is_amx_tile_supported=lambda: amx))

    assert not cpu_has_native_bf16(fake(False, False))
    assert cpu_has_native_bf16(fake(True, False)) and cpu_has_native_bf16(fake(False, True))
    assert not cpu_has_native_bf16(SimpleNamespace(cpu=SimpleNamespace()))  # an older torch: no probe
