"""Results folders at the command line (reliability class 3): ``analyze``, ``segment`` and
``demo`` leave their folder holding the old complete set or the new complete set, never a mix.
Each test builds its fault (a re-run with fewer lesions, a full disk, a refused permission, a bad
input or ``--scene``, SIGTERM / Ctrl-C / kill -9 mid-analysis, two runs at once) and checks the
exit code, the message and the folder's files."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.cli.main import main
from LiverLVTLib.core.results import MARKER

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def phantom():
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    return make_small_phantom(seed=0)


def one_lesion(labels: sitk.Image) -> sitk.Image:
    """The phantom's labels with every tumor component but the largest turned into liver."""
    from scipy import ndimage

    lab = sitk.GetArrayFromImage(labels)
    comps, count = ndimage.label(lab == 3)
    sizes = np.bincount(comps.ravel())[1:]
    lab[(comps > 0) & (comps != 1 + int(np.argmax(sizes)))] = 1
    image = sitk.GetImageFromArray(lab)
    image.CopyInformation(labels)
    return image


@pytest.fixture
def case(tmp_path, phantom):
    """(ct path, 4-lesion labels path, 1-lesion labels path)."""
    ct, many, one = tmp_path / "ct.nii.gz", tmp_path / "labels.nii.gz", tmp_path / "one.nii.gz"
    sitk.WriteImage(phantom.ct, str(ct))
    sitk.WriteImage(phantom.labels, str(many))
    sitk.WriteImage(one_lesion(phantom.labels), str(one))
    return str(ct), str(many), str(one)


def listing(folder: Path) -> dict:
    """{relative path: bytes} of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(out: Path) -> list:
    """Anything a run left beside ``out`` (staging, old set, lock)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def analyze(case_paths, out, labels=None, *extra) -> int:
    ct, many, _ = case_paths
    return main(["analyze", ct, labels or many, "--out", str(out), *extra])


@pytest.fixture
def old_set(case, tmp_path, capsys):
    """An output folder holding a complete earlier 4-lesion result set."""
    out = tmp_path / "out"
    assert analyze(case, out) == 0
    capsys.readouterr()
    return out


def lesion_models(out: Path) -> list:
    return sorted({p.stem for p in (out / "models").iterdir() if p.stem.startswith("lesion_")})


# ----------------------------------------------------------------------------- re-runs
def test_rerun_leaves_none_of_the_old_cases_models(case, old_set, capsys):
    assert len(lesion_models(old_set)) == 4
    assert analyze(case, old_set, case[2]) == 0
    assert len(lesion_models(old_set)) == 1
    assert siblings(old_set) == []
    printed = capsys.readouterr().out
    assert str(old_set / "measurements.json") in printed and ".liverlvt-new" not in printed


# ----------------------------------------------------------------------------- write failures
def _fail_on_liver_vtp(monkeypatch):
    from LiverLVTLib.outputs import meshes

    real = meshes.write_vtp

    def write_vtp(poly, path):
        if Path(path).name == "liver.vtp":
            Path(path).write_bytes(b"half a vtp")  # a partial file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(poly, path)

    monkeypatch.setattr(meshes, "write_vtp", write_vtp)
    return "models/liver.vtp", "No space left on device"


def _fail_on_report(monkeypatch):
    from LiverLVTLib.outputs import report

    def write_report(result, ct, labels, path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(report, "write_report", write_report)
    return "report.html", "Permission denied"


@pytest.mark.parametrize("fault", [_fail_on_liver_vtp, _fail_on_report], ids=["disk-full", "permission"])
def test_write_failure_names_the_file_and_keeps_the_old_set(case, old_set, monkeypatch, capsys, fault):
    before = listing(old_set)
    name, reason = fault(monkeypatch)
    assert analyze(case, old_set, case[2]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Fix:" in err[0], err
    assert str(old_set / name) in err[0] and reason in err[0] and "previous results" in err[0]
    assert listing(old_set) == before
    assert siblings(old_set) == []


def test_real_full_disk_on_a_small_tmpfs(case, tmp_path, capsys):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): the simulated "
                    "ENOSPC test covers the same path")
    try:
        out = mnt / "out"
        assert analyze(case, out, None, "--no-models") == 0  # fits
        before = listing(out)
        capsys.readouterr()
        assert analyze(case, out) == 2  # the models do not fit next to the old set
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and str(out / "models" / "liver") in err
        assert ("No space left" in err or "disk space" in err) and "previous results" in err
        assert ".liverlvt-new" not in err
        assert listing(out) == before and siblings(out) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ----------------------------------------------------------------------------- checked first
def test_bad_input_never_touches_the_folder(case, old_set, tmp_path, phantom, capsys):
    before = listing(old_set)
    shifted = sitk.Image(phantom.labels)
    shifted.SetOrigin(tuple(np.add(phantom.labels.GetOrigin(), (5.0, 0, 0))))
    bad = tmp_path / "shifted.nii.gz"
    sitk.WriteImage(shifted, str(bad))
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    for labels, words in ((str(bad), "grid"), (str(empty), "empty")):
        assert analyze(case, old_set, labels) == 2
        assert words in capsys.readouterr().err
        assert listing(old_set) == before and siblings(old_set) == []
        fresh = tmp_path / "new" / "out"
        assert analyze(case, fresh, labels) == 2
        assert not (tmp_path / "new").exists(), "input is checked before the folder is created"
    capsys.readouterr()


def test_a_folder_holding_the_input_or_the_users_files_is_refused(case, tmp_path, phantom, capsys):
    """The swap replaces the whole folder: a folder holding the run's own input (labels
    corrected in place, the CT) or files that are not LiverLVT results is refused, untouched."""
    out = tmp_path / "out"
    assert analyze(case, out) == 0
    corrected = out / "labels.nii.gz"  # e.g. segment's labels, corrected in Slicer and saved back
    corrected.write_bytes(Path(case[1]).read_bytes())
    before = listing(out)
    capsys.readouterr()
    assert main(["analyze", case[0], str(corrected), "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert "holds the input" in line and str(corrected) in line
    assert listing(out) == before
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.docx").write_text("precious")
    assert analyze(case, mine) == 2
    assert "not LiverLVT results" in capsys.readouterr().err
    assert listing(mine) == {"chapter1.docx": b"precious"} and siblings(mine) == []


@pytest.mark.parametrize("scene, words", [("scene.txt", "must end in .mrb"),
                                          ("afile/scene.mrb", "not a writable folder"),
                                          ("adir.mrb", "is a folder")])
def test_scene_path_is_checked_before_the_work(case, old_set, tmp_path, capsys, scene, words):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.mrb").mkdir()
    before = listing(old_set)
    assert analyze(case, old_set, case[2], "--scene", str(tmp_path / scene)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert listing(old_set) == before


def test_scene_is_kept_when_the_run_fails(case, old_set, tmp_path, monkeypatch, capsys):
    pytest.importorskip("slicer")
    scene = tmp_path / "case.mrb"
    scene.write_bytes(b"old scene")
    _fail_on_report(monkeypatch)
    assert analyze(case, old_set, case[2], "--scene", str(scene)) == 2
    assert scene.read_bytes() == b"old scene"
    assert sorted(p.name for p in tmp_path.iterdir() if "case.mrb" in p.name) == ["case.mrb"]


def test_scene_lands_with_the_set(case, tmp_path, capsys):
    """A scene beside the folder is moved into place after the swap; one inside the folder is
    part of the set (and goes with it on the next run)."""
    pytest.importorskip("slicer")
    out, beside = tmp_path / "out", tmp_path / "scenes" / "case.mrb"
    assert analyze(case, out, case[2], "--no-models", "--no-report", "--scene", str(beside)) == 0
    assert beside.stat().st_size > 1000 and sorted(p.name for p in beside.parent.iterdir()) == ["case.mrb"]
    assert analyze(case, out, case[2], "--no-models", "--no-report", "--scene", str(out / "scene.mrb")) == 0
    assert (out / "scene.mrb").stat().st_size > 1000 and siblings(out) == []
    assert analyze(case, out, case[2], "--no-models", "--no-report") == 0
    assert not (out / "scene.mrb").exists()


# ----------------------------------------------------------------------------- signals, locks
DRIVER = textwrap.dedent("""
    import signal, sys, time
    # a run started in the background by a non-interactive shell inherits SIGINT ignored (POSIX);
    # Ctrl-C reaches an interactive run, so the test gives the driver Python's own handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from LiverLVTLib.outputs import report
    real = report.write_report
    def slow(*args, **kwargs):  # mid-analysis: measurements and models are staged, report next
        print("LIVERLVT_TEST writing the report", flush=True)
        time.sleep(120)
        return real(*args, **kwargs)
    report.write_report = slow
    from LiverLVTLib.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def start_slow_run(tmp_path, case_paths, out) -> subprocess.Popen:
    """``liverlvt analyze`` in a subprocess, returned once it is writing its report."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(driver), "analyze", case_paths[0], case_paths[2],
                             "--out", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        if line.startswith("LIVERLVT_TEST"):
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"the run never reached its report: {proc.communicate()[1]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_mid_analysis_keeps_the_old_set(case, old_set, tmp_path, signum):
    before = listing(old_set)
    proc = start_slow_run(tmp_path, case, old_set)
    assert any(p.name.startswith(".out.liverlvt-new") for p in tmp_path.iterdir())
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled; nothing of the new results was written" in err and "Traceback" not in err
    assert listing(old_set) == before
    assert siblings(old_set) == []


def test_kill_9_mid_analysis_keeps_the_old_set_and_the_next_run_recovers(case, old_set, tmp_path, capsys):
    before = listing(old_set)
    proc = start_slow_run(tmp_path, case, old_set)
    proc.kill()
    proc.communicate(timeout=60)
    assert listing(old_set) == before
    assert analyze(case, old_set, case[2]) == 0
    assert len(lesion_models(old_set)) == 1 and siblings(old_set) == []


def test_second_concurrent_run_is_refused(case, old_set, tmp_path, capsys):
    before = listing(old_set)
    proc = start_slow_run(tmp_path, case, old_set)
    try:
        assert analyze(case, old_set, case[2]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"another LiverLVT run (process {proc.pid})" in err[0], err
        assert listing(old_set) == before
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert listing(old_set) == before and siblings(old_set) == []


# ----------------------------------------------------------------------------- segment, demo
def test_segment_rerun_and_bad_model_card(tmp_path, phantom, tiny_model_dir, monkeypatch, capsys):
    """segment: a second run replaces the set whole; a malformed card is refused before the
    folder exists."""
    import json
    import shutil

    from LiverLVTLib.cli import segment as pipeline

    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(phantom.ct, str(ct))
    out = tmp_path / "seg"
    monkeypatch.setattr(pipeline, "segment_ct", lambda ct, options=None, progress=None: phantom.labels)
    assert main(["segment", str(ct), "--out", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    assert len(lesion_models(out)) == 4
    monkeypatch.setattr(pipeline, "segment_ct",
                        lambda ct, options=None, progress=None: one_lesion(phantom.labels))
    assert main(["segment", str(ct), "--out", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    assert len(lesion_models(out)) == 1 and siblings(out) == []
    bad = tmp_path / "bad-model"
    shutil.copytree(tiny_model_dir, bad)
    card = json.loads((bad / "model.json").read_text())
    card["stages"][0]["network"]["args"]["colour"] = 3
    (bad / "model.json").write_text(json.dumps(card))
    capsys.readouterr()
    assert main(["segment", str(ct), "--out", str(tmp_path / "never"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "network.args" in err and "colour" in err
    assert not (tmp_path / "never").exists()


def test_demo_rerun_replaces_the_set(tmp_path, monkeypatch, capsys):
    from LiverLVTLib.cli import segment as pipeline
    from LiverLVTLib.synthetic import phantom as phantom_mod

    small = phantom_mod.make_small_phantom(seed=0)
    monkeypatch.setattr(phantom_mod, "make_phantom", lambda seed=0: small)
    out = tmp_path / "demo"
    monkeypatch.setattr(pipeline, "segment_ct", lambda ct, options=None, progress=None: small.labels)
    assert main(["demo", "--out", str(out), "--no-models"]) == 0
    (out / "models").mkdir()
    (out / "models" / "lesion_09_tumor.vtp").write_text("from an older run")
    assert main(["demo", "--out", str(out), "--no-models", "--no-report"]) == 0
    assert sorted(listing(out)) == sorted([MARKER, "ct.nii.gz", "truth_labels.nii.gz", "labels.nii.gz",
                                           "measurements.json", "lesions.csv"])
    assert "liver Dice" in capsys.readouterr().out
