"""Reading CTs and label maps, writing outputs atomically.

Images travel through the pipeline as SimpleITK images, so the physical geometry (spacing,
origin, direction) is never lost. CT voxels are float32 Hounsfield units; label maps are uint8
(see :mod:`LiverLVTLib.core.labels`) on the CT's own grid.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import (  # noqa: F401 - writing helpers re-exported: io is the usual door
    IMAGE_SUFFIXES,
    _suffix,
    atomic_path,
    ensure_output_dir,
    write_bytes,
    write_text,
)
from .image_check import check_dicom_slices, check_spacing, preflight

PathLike = Union[str, os.PathLike]
GRID_TOLERANCE = 1e-4  # relative tolerance on spacing/origin/direction when comparing grids


def case_name(path: PathLike) -> str:
    """A readable name for a CT path: the file name without its image suffix, prefixed with the
    folder name when the file has a generic name (``case-7/ct.nii.gz`` -> ``case-7-ct``)."""
    path = Path(str(path).rstrip("/"))
    suffix = _suffix(path)
    name = path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.name
    if name.lower() in ("ct", "image", "img", "volume", ""):
        name = f"{path.resolve().parent.name}-{name or 'ct'}"
    return name


# ----------------------------------------------------------------------------- reading
def read_image(path: PathLike, what: str = "image") -> sitk.Image:
    """Read a NIfTI / NRRD / MHA file or a DICOM series folder (largest CT series), after the
    file-level checks of :func:`image_check.preflight` (header, memory, complete data, NaN)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path (str or os.PathLike) or a SimpleITK.Image, got "
                        f"{type(path).__name__}")
    path = Path(path)
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a path component over 255 characters
        raise InputError(f"the {what} path cannot be used ({exc.strerror or exc}): '{str(path)[:80]}...'",
                         "give a shorter path (each folder or file name under 255 characters)") from None
    if not exists:
        raise InputError(f"'{path}' does not exist", "give the path of a CT file or DICOM folder")
    if path.is_dir():
        return _read_dicom_folder(path)
    if path.stat().st_size == 0:
        raise InputError(f"the {what} '{path}' is an empty file (0 bytes)", "export it again")
    preflight(path, what)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"the {what} file '{path.name}' cannot be read (damaged, truncated or an "
                         "unsupported variant)", "give a NIfTI (.nii/.nii.gz), NRRD, MHA file or a "
                         "DICOM series folder; re-export it if it was damaged") from None


@contextlib.contextmanager
def keep_locale() -> Iterator[None]:
    """GDCM (ITK's DICOM layer) sets the C library's locale to "C"; put it back, or later text
    decoding (subprocess output, file names) falls back to ASCII."""
    import locale

    saved = locale.setlocale(locale.LC_ALL, None)
    try:
        yield
    finally:
        with contextlib.suppress(locale.Error):
            locale.setlocale(locale.LC_ALL, saved)


def _series_modality(files) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
        return reader.GetMetaData("0008|0060").strip() if reader.HasMetaDataKey("0008|0060") else ""
    except RuntimeError:
        return ""


def _read_dicom_folder(folder: Path) -> sitk.Image:
    with keep_locale():
        return _read_dicom_series(folder)


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        if files and _series_modality(files).upper() in ("CT", ""):
            series.append(files)
    if not series:
        raise InputError(
            f"the folder '{folder}' holds no CT DICOM series",
            "give the folder of an axial CT series (Modality CT) or a NIfTI/NRRD file",
        )
    files = max(series, key=len)  # the largest CT series: the volume a radiologist would read
    check_dicom_slices(files, folder.name)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError:
        raise InputError(f"the DICOM series in '{folder}' cannot be read (corrupt files?)",
                         "re-export the series from PACS") from None


def check_geometry(image: sitk.Image, what: str = "image") -> None:
    """Refuse images that are not 3-D volumes with plausible spacing."""
    if image.GetDimension() != 3:
        raise InputError(f"the {what} is {image.GetDimension()}-D, not a 3-D volume",
                         "give a 3-D CT volume (a stack of axial slices)")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"the {what} has {image.GetNumberOfComponentsPerPixel()} components per "
                         "voxel (colour image?), not a CT", "give a grey-level CT volume in HU")
    size = image.GetSize()
    if min(size) < 2:
        raise InputError(f"the {what} has size {size}: a single slice, not a 3-D volume",
                         "give the whole CT series, not one slice")
    check_spacing(image.GetSpacing(), what)


def check_ct_values(array: np.ndarray, pixel_id: int) -> None:
    """Refuse volumes whose voxel values cannot be Hounsfield units of an abdominal CT."""
    if pixel_id in (sitk.sitkUInt8, sitk.sitkInt8):
        raise InputError("the volume has 8-bit voxels (a photo/PNG stack or a mask?), not CT "
                         "Hounsfield units", "give the original CT series (16-bit, in HU)")
    if not np.all(np.isfinite(array)):
        raise InputError(f"the CT holds {int(np.size(array) - np.isfinite(array).sum())} NaN/Inf "
                         "voxels", "re-export the CT; every voxel must be a finite HU value")
    low, high = np.percentile(array[:: max(1, array.size // 2_000_000)], [1, 99])
    # An abdominal CT always holds fat (-100 HU) or air (-1000 HU) and soft tissue (> 0 HU);
    # MR, PET or un-rescaled CT (raw 0..4095 without RescaleIntercept) do not. Padding outside
    # the scan circle (-2048, -3024, -32768) is allowed: it is below air, not a modality clue.
    if low > -50 or high < 0 or high - low < 100 or high > 30000:
        raise InputError(
            f"the voxel values (1st-99th percentile {low:.0f}..{high:.0f}) are not Hounsfield units "
            "of a CT (MR, PET, or CT without its rescale intercept?)",
            "give a CT in HU (air -1000, fat -100, liver about 60)",
        )


def require_image(value, what: str, paths: bool = True) -> None:
    """TypeError naming what is expected when ``value`` is neither a SimpleITK image nor (with
    ``paths``) a file path: a numpy array has no spacing, origin or direction."""
    if isinstance(value, sitk.Image) or (paths and isinstance(value, (str, os.PathLike))):
        return
    expected = "a SimpleITK.Image or a file path (str or pathlib.Path)" if paths else "a SimpleITK.Image"
    kind = "None" if value is None else f"{type(value).__module__}.{type(value).__qualname__}"
    hint = (" (a numpy array has no spacing, origin or direction: make it an image with "
            "SimpleITK.GetImageFromArray and copy the CT's geometry with CopyInformation)"
            if isinstance(value, np.ndarray) else "")
    raise TypeError(f"the {what} must be {expected}, not {kind.replace('builtins.', '')}{hint}")


def read_ct(source: Union[PathLike, sitk.Image]) -> sitk.Image:
    """Read (or take) a CT and return it as a validated float32 HU image."""
    require_image(source, "CT")
    image = source if isinstance(source, sitk.Image) else read_image(source, "CT")
    check_geometry(image, "CT")
    pixel_id = image.GetPixelID()
    ct = sitk.Cast(image, sitk.sitkFloat32)
    check_ct_values(sitk.GetArrayViewFromImage(ct), pixel_id)
    return ct


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = GRID_TOLERANCE) -> bool:
    """True when both images share size, spacing, origin and direction."""
    if a.GetSize() != b.GetSize():
        return False
    scale = max(1.0, float(np.max(np.abs(a.GetOrigin()))))
    return (np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=tol, atol=tol)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tol * scale)
            and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=tol))


def describe_grid(image: sitk.Image) -> str:
    fmt = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
    return (f"size {image.GetSize()}, spacing {fmt(image.GetSpacing())}, origin "
            f"{fmt(image.GetOrigin())}, direction {fmt(image.GetDirection())}")


def require_same_grid(labels: sitk.Image, ct: sitk.Image) -> None:
    if not same_grid(labels, ct):
        raise InputError(
            "the label map does not lie on the CT's grid (labels: " + describe_grid(labels)
            + "; CT: " + describe_grid(ct) + ")",
            "give labels made on this CT (LiverLVT never resamples labels silently)",
        )


def as_labels(image: sitk.Image, reference: sitk.Image | None = None) -> sitk.Image:
    """Validate a label map (values 0..3, integral) and return it as uint8."""
    require_image(image, "label map", paths=False)
    check_geometry(image, "label map")
    array = sitk.GetArrayViewFromImage(image)
    values = np.unique(array)
    bad = [v for v in values.tolist() if v not in (0, 1, 2, 3)]
    if bad:
        raise InputError(f"the label map holds values {bad[:8]} outside 0-3",
                         "use 0 background, 1 liver, 2 hepatic vessel, 3 tumor")
    labels = sitk.Cast(image, sitk.sitkUInt8)
    if reference is not None:
        require_same_grid(labels, reference)
    return labels


def read_labels(path: PathLike, reference: sitk.Image | None = None) -> sitk.Image:
    return as_labels(read_image(path, "label map"), reference)


# ----------------------------------------------------------------------------- writing
def write_image(image: sitk.Image, path: PathLike, compress: bool = True) -> Path:
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return Path(path)
