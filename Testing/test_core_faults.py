"""Damaged or forged image files are refused before any work, with one line naming the problem
and the fix (issue: reliability, classes 1 and 2): truncated NIfTI (plain and gzip, CT and label
map), NaN/Inf voxels in the raw data, zero spacing (NIfTI pixdim, MHA), a header-only giant
image (refused from its header, in well under a second, without allocating), DICOM series with
a missing or broken slice."""
from __future__ import annotations

import gzip
import struct
import time

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.core.errors import InputError
from LiverLVTLib.core.io import read_ct, read_labels


def ct_image(dtype=np.float32):
    rng = np.random.default_rng(0)
    a = (rng.random((20, 30, 40)) * 1100 - 1000).astype(dtype)
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.8, 0.8, 2.0))
    return img


def refused(path, reader=read_ct, *words):
    with pytest.raises(InputError) as info:
        reader(path)
    text = str(info.value)
    assert "Fix:" in text and "\n" not in text, text
    for w in words:
        assert w in text, text
    return text


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_is_refused(tmp_path, dtype, suffix):
    good = tmp_path / f"ct{suffix}"
    sitk.WriteImage(ct_image(dtype), str(good))
    assert read_ct(good).GetSize() == (40, 30, 20)
    data = good.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    refused(cut, read_ct, "truncated", "cut" + suffix)


def test_truncated_label_map_is_refused(tmp_path):
    labels = sitk.GetImageFromArray(np.random.default_rng(1).integers(0, 4, (20, 30, 40)).astype(np.uint8))
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(labels, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(path, read_labels, "label map", "truncated")


def _raw_nifti(tmp_path, name="ct.nii"):
    path = tmp_path / name
    sitk.WriteImage(ct_image(), str(path), False)
    return bytearray(path.read_bytes())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("compress", [False, True])
def test_nan_or_inf_in_raw_float_nifti_is_refused(tmp_path, value, compress):
    raw = _raw_nifti(tmp_path)
    offset = int(struct.unpack("<f", raw[108:112])[0])
    struct.pack_into("<f", raw, offset + 4 * 123, value)
    path = tmp_path / ("bad.nii.gz" if compress else "bad.nii")
    path.write_bytes(gzip.compress(bytes(raw)) if compress else bytes(raw))
    refused(path, read_ct, "NaN/Inf")


def test_zero_spacing_is_refused_in_nifti_and_mha(tmp_path):
    raw = _raw_nifti(tmp_path)
    struct.pack_into("<3f", raw, 80, 0.0, 0.0, 0.0)  # pixdim[1..3]
    (tmp_path / "zero.nii").write_bytes(bytes(raw))
    refused(tmp_path / "zero.nii", read_ct, "spacing")
    mha = tmp_path / "ct.mha"
    sitk.WriteImage(ct_image(), str(mha))
    text = mha.read_bytes()
    start = text.index(b"ElementSpacing")
    (tmp_path / "zero.mha").write_bytes(text[:start] + b"ElementSpacing = 0 0 0" + text[text.index(b"\n", start):])
    refused(tmp_path / "zero.mha", read_ct, "spacing")


@pytest.mark.parametrize("name", ["giant.nii", "giant.nii.gz"])
def test_header_only_giant_image_is_refused_from_its_header(tmp_path, name):
    header = _raw_nifti(tmp_path)[:352]
    struct.pack_into("<8h", header, 40, 3, 1024, 1024, 1000, 1, 1, 1, 1)
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(header)) if name.endswith(".gz") else bytes(header))
    start = time.perf_counter()
    text = refused(path, read_ct)
    assert time.perf_counter() - start < 1.0
    assert "1024 x 1024 x 1000" in text or "truncated" in text, text


def _dicom_series(folder, n=8, step=2.5):
    img = ct_image(np.int16)[:, :, :n]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = "1.2.826.0.1.3680043.2.1125.1.42"
    for k in range(n):
        sl = img[:, :, k]
        for tag, value in (("0008|0060", "CT"), ("0020|000e", series), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{k * step}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0028|0030", "0.8\\0.8"), ("0018|0050", str(step))):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    return folder


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    folder = _dicom_series(tmp_path)
    assert read_ct(folder).GetSize()[2] == 8
    (folder / "slice004.dcm").unlink()
    refused(folder, read_ct, "uneven slice positions")


def test_dicom_series_with_a_broken_slice_is_refused(tmp_path):
    folder = _dicom_series(tmp_path)
    path = folder / "slice003.dcm"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError) as info:
        read_ct(folder)
    assert "slice" in str(info.value) and "Fix:" in str(info.value)


def test_api_given_a_numpy_array_or_none_says_what_it_expects():
    for bad in (np.zeros((4, 4, 4)), None):
        with pytest.raises(TypeError, match="SimpleITK.Image"):
            read_ct(bad)


def test_path_component_over_255_characters(tmp_path):
    text = refused(tmp_path / ("x" * 300 + ".nii.gz"), read_ct, "shorter path")
    assert len(text) < 400
