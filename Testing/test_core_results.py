"""Results folders hold the old complete set or the new complete set, never a mix (reliability
class 3): a failed, interrupted or terminated run leaves the old set untouched; a successful run
leaves none of the old set's files; a second concurrent run is refused; a folder of the user's
own files is never replaced; a full disk names the file and keeps the old results."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from LiverLVTLib.core.errors import OutputError
from LiverLVTLib.core.results import MARKER, result_folder

REPO = Path(__file__).resolve().parent.parent


def write_set(out: Path, files: dict) -> None:
    with result_folder(out) as stage:
        for name, text in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)


def listing(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_new_set_replaces_the_old_set_whole(tmp_path):
    out = tmp_path / "out"
    write_set(out, {"labels.nii.gz": "old", "models/lesion_01_tumor.vtp": "a", "models/lesion_02_tumor.vtp": "b"})
    write_set(out, {"labels.nii.gz": "new", "models/lesion_01_tumor.vtp": "c"})
    assert listing(out) == [MARKER, "labels.nii.gz", "models/lesion_01_tumor.vtp"]
    assert (out / "labels.nii.gz").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no staging, old or lock left behind"


@pytest.mark.parametrize("fault", [RuntimeError("analysis failed"), KeyboardInterrupt()])
def test_failed_or_interrupted_run_keeps_the_old_set(tmp_path, fault):
    out = tmp_path / "out"
    write_set(out, {"labels.nii.gz": "old", "report.html": "old report"})
    before = listing(out)
    with pytest.raises(type(fault)):
        with result_folder(out) as stage:
            (stage / "labels.nii.gz").write_text("new")
            raise fault
    assert listing(out) == before and (out / "labels.nii.gz").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_disk_full_names_the_file_and_keeps_the_old_set(tmp_path):
    out = tmp_path / "out"
    write_set(out, {"labels.nii.gz": "old"})
    with pytest.raises(OutputError) as info:
        with result_folder(out) as stage:
            raise OSError(errno.ENOSPC, "No space left on device", str(stage / "models" / "liver.vtp"))
    text = str(info.value)
    assert "No space left on device" in text and "liver.vtp" in text and "previous results" in text
    assert (out / "labels.nii.gz").read_text() == "old"


def test_real_full_disk_on_a_small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): the simulated ENOSPC test covers the logic")
    try:
        out = mnt / "out"
        write_set(out, {"labels.nii.gz": "old"})
        with pytest.raises(OutputError, match="No space left"):
            with result_folder(out) as stage:
                (stage / "big.bin").write_bytes(os.urandom(1 << 20))
        assert listing(out) == [MARKER, "labels.nii.gz"]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_folder_of_the_users_own_files_is_refused(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.docx").write_text("precious")
    with pytest.raises(OutputError, match="not LiverLVT results"):
        write_set(mine, {"labels.nii.gz": "x"})
    assert (mine / "chapter1.docx").read_text() == "precious"


def _runner(out: Path, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from LiverLVTLib.core.results import result_folder
        with result_folder({str(out)!r}) as stage:
            (stage / "labels.nii.gz").write_text("new")
            print("writing", flush=True)
            time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_second_concurrent_run_is_refused_and_sigterm_keeps_the_old_set(tmp_path):
    out = tmp_path / "out"
    write_set(out, {"labels.nii.gz": "old"})
    proc = _runner(out, 30)
    try:
        with pytest.raises(OutputError, match=f"process {proc.pid}"):
            write_set(out, {"labels.nii.gz": "other"})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) != 0
    finally:
        proc.kill()
    assert (out / "labels.nii.gz").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "a terminated run cleans up"


def test_kill_9_leaves_the_old_set_and_the_next_run_recovers(tmp_path):
    out = tmp_path / "out"
    write_set(out, {"labels.nii.gz": "old"})
    proc = _runner(out, 30)
    proc.kill()
    proc.wait(10)
    time.sleep(0.1)
    assert (out / "labels.nii.gz").read_text() == "old"
    write_set(out, {"labels.nii.gz": "new"})  # stale lock and staging folder are taken over
    assert (out / "labels.nii.gz").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_user_files_with_liverlvt_names_are_not_taken_for_results(tmp_path):
    """A folder holding a user's own ct.nii.gz and labels.nii.gz (no marker, no LiverLVT
    measurements.json) is refused; an old results folder (our measurements.json) is replaced."""
    mine = tmp_path / "case7"
    mine.mkdir()
    (mine / "ct.nii.gz").write_text("the user's CT")
    (mine / "labels.nii.gz").write_text("the radiologist's corrected labels")
    with pytest.raises(OutputError, match="not LiverLVT results"):
        write_set(mine, {"labels.nii.gz": "x"})
    assert (mine / "labels.nii.gz").read_text() == "the radiologist's corrected labels"
    old = tmp_path / "old-results"
    old.mkdir()
    (old / "labels.nii.gz").write_text("old")
    (old / "measurements.json").write_text('{"schema": "liverlvt.measurements/1"}')
    write_set(old, {"labels.nii.gz": "new"})
    assert (old / "labels.nii.gz").read_text() == "new"
