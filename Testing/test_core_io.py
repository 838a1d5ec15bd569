"""I/O: round trips for every format and orientation, CT validation, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.core import io
from LiverLVTLib.core.errors import InputError, OutputError

ORIENTATIONS = ["LPS", "RAS", "LAI", "PIR"]


def ct_like(orientation="LPS", spacing=(0.7, 0.9, 2.5), size=(24, 20, 12), seed=0):
    rng = np.random.default_rng(seed)
    array = rng.normal(40, 20, size[::-1]).astype(np.int16)
    array[:, :3, :] = -1000  # air
    array[:, 3:6, :] = -100  # fat
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-120.5, 33.0, -400.25))
    return sitk.DICOMOrient(image, orientation)


def assert_same_image(a: sitk.Image, b: sitk.Image):
    assert io.same_grid(a, b), (io.describe_grid(a), io.describe_grid(b))
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_file_round_trip_keeps_geometry_and_hu(tmp_path, suffix, orientation):
    image = ct_like(orientation)
    path = io.write_image(image, tmp_path / f"ct{suffix}")
    back = io.read_ct(path)
    assert back.GetPixelID() == sitk.sitkFloat32
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(back.GetDirection()) == orientation
    assert_same_image(back, sitk.Cast(image, sitk.sitkFloat32))


def write_dicom_series(image: sitk.Image, folder, series_uid: str, modality="CT"):
    """Write an int16 volume as a DICOM series (one file per slice, HU via rescale tags)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": modality, "0020|000e": series_uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
            "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k)))),
            "0020|0037": "\\".join(map(str, (direction[0], direction[3], direction[6],
                                             direction[1], direction[4], direction[7]))),
            "0028|1052": "0", "0028|1053": "1", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
        }
        for key, value in tags.items():
            slice_.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{series_uid[-2:]}-slice{k:03d}.dcm"))
        writer.Execute(slice_)


def test_dicom_folder_picks_the_largest_ct_series(tmp_path):
    big = ct_like(size=(16, 16, 10))
    small = ct_like(size=(16, 16, 4), seed=1)
    write_dicom_series(big, tmp_path / "dcm", "1.2.826.0.1.3680043.2.1125.10")
    write_dicom_series(small, tmp_path / "dcm", "1.2.826.0.1.3680043.2.1125.11")
    back = io.read_ct(tmp_path / "dcm")
    assert back.GetSize() == big.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), big.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(big))


def test_dicom_folder_without_ct_is_refused(tmp_path):
    write_dicom_series(ct_like(size=(16, 16, 4)), tmp_path / "mr", "1.2.826.0.1.3680043.2.1125.12", "MR")
    with pytest.raises(InputError, match="no CT DICOM series"):
        io.read_ct(tmp_path / "mr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no CT DICOM series"):
        io.read_ct(tmp_path / "empty")


@pytest.mark.parametrize("make, message", [
    (lambda: sitk.Image([30, 30], sitk.sitkInt16), "2-D"),
    (lambda: sitk.Image([30, 30, 1], sitk.sitkInt16), "single slice"),
    (lambda: sitk.Image([30, 30, 5], sitk.sitkUInt8), "8-bit"),
    (lambda: sitk.Image([30, 30, 5], sitk.sitkVectorInt16, 3), "components"),
])
def test_not_a_ct_volume(make, message):
    with pytest.raises(InputError, match=message):
        io.read_ct(make())


def test_mr_like_values_are_not_hounsfield_units():
    rng = np.random.default_rng(0)
    mr = sitk.GetImageFromArray(rng.uniform(0, 900, (8, 20, 20)).astype(np.float32))
    with pytest.raises(InputError, match="not Hounsfield units"):
        io.read_ct(mr)


def test_nan_voxels_refused():
    image = ct_like()
    array = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkFloat32))
    array[2, 3, 4] = np.nan
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(image)
    with pytest.raises(InputError, match="NaN"):
        io.read_ct(bad)


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 25.0), (0.8, 0.8, 1e-9)])
def test_absurd_spacing_refused(spacing):
    image = ct_like()
    image.SetSpacing(spacing)
    with pytest.raises(InputError, match="spacing"):
        io.read_ct(image)


def test_empty_and_corrupt_files(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        io.read_ct(tmp_path / "empty.nii.gz")
    (tmp_path / "corrupt.nii.gz").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="cannot be read"):
        io.read_ct(tmp_path / "corrupt.nii.gz")
    with pytest.raises(InputError, match="does not exist"):
        io.read_ct(tmp_path / "missing.nii.gz")


def test_labels_checked_for_values_and_grid():
    ct = ct_like()
    labels = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    labels.CopyInformation(ct)
    assert io.as_labels(labels, ct).GetPixelID() == sitk.sitkUInt8
    labels[1, 1, 1] = 7
    with pytest.raises(InputError, match="outside 0-3"):
        io.as_labels(labels, ct)
    other = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    with pytest.raises(InputError, match="does not lie on the CT's grid"):
        io.as_labels(other, ct)


def test_atomic_write_never_half_overwrites(tmp_path, monkeypatch):
    target = tmp_path / "labels.nii.gz"
    original = ct_like()
    io.write_image(original, target)
    before = target.read_bytes()

    def broken_writer(image, path, *args):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_writer)
    with pytest.raises(RuntimeError, match="disk full"):
        io.write_image(ct_like(seed=3), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]


def test_unwritable_output_folder(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        io.ensure_output_dir(tmp_path / "a_file" / "out")
