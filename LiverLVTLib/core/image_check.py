"""Checks made on an image file before any voxel is allocated (header) and on its raw data
(before the reader can hide a fault).

Why: ITK's readers zero-fill a truncated NIfTI, turn NaN voxels of a float NIfTI into 0, read a
zero ``pixdim`` as 1 mm and allocate whatever a header declares. So, in this order:
1. the header (``ImageFileReader.ReadImageInformation``: no voxel data): 3-D, size, finite
   positive spacing, and the memory the pipeline will need for that size against the memory
   available (:data:`PIPELINE_BYTES_PER_VOXEL`);
2. NIfTI-1 single files (``.nii``/``.nii.gz``): the raw header's ``pixdim`` and the data
   itself, streamed once in chunks: all declared bytes present (a truncated file or gzip stream
   is refused), gzip CRC intact, no NaN/Inf in float data;
3. uncompressed MetaImage (``.mha``): the declared data fits in the file.
Every refusal is an :class:`InputError` naming the problem and the fix.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from .errors import InputError

MIN_SPACING_MM = 0.05  # below any clinical CT (and below 0 / NaN headers)
MAX_SPACING_MM = 10.0
# peak resident memory of a whole run per CT voxel (float32 CT, its canonical copy, label
# maps, analysis crops); measured ~30 B/voxel on ircadb-1.1 (1.3 GB peak for 33.8 M voxels,
# of which ~0.3 GB is the interpreter + torch), so 40 leaves a margin
PIPELINE_BYTES_PER_VOXEL = 40
MAX_VOXELS = 2048 ** 3  # no CT is larger than this, whatever the machine
CHUNK = 16 << 20

# NIfTI-1 datatype code -> numpy dtype (the codes of nifti1.h)
NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
                1024: "i8", 1280: "u8"}


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def header_info(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"'{path.name}' cannot be read: it has no readable image header (damaged, "
                         "truncated or not an image file)", "give a NIfTI (.nii/.nii.gz), NRRD or MHA file, or a DICOM "
                         "series folder; re-export it if it was damaged") from None
    return reader


def check_declared(size, spacing, what: str, name: str) -> None:
    """Size, spacing and memory from the header alone."""
    if len(size) != 3:
        raise InputError(f"the {what} '{name}' is {len(size)}-D, not a 3-D volume",
                         "give a 3-D CT volume (a stack of axial slices)")
    if min(size) < 2:
        raise InputError(f"the {what} '{name}' has size {tuple(size)}: a single slice, not a 3-D volume",
                         "give the whole CT series, not one slice")
    check_spacing(spacing, what, name)
    voxels = int(np.prod(np.asarray(size, np.int64)))
    need = voxels * PIPELINE_BYTES_PER_VOXEL
    free = available_memory()
    if voxels > MAX_VOXELS or (free is not None and need > free):
        have = f"{free / 2**30:.1f} GiB available" if free is not None else "far beyond any CT"
        raise InputError(f"the {what} '{name}' declares {' x '.join(map(str, size))} voxels, which needs "
                         f"about {need / 2**30:.1f} GiB ({have})",
                         "check the header (a damaged or forged file?) or crop/downsample the CT first")


def check_spacing(spacing, what: str, name: Optional[str] = None) -> None:
    spacing = np.asarray(spacing, float)
    if (not np.all(np.isfinite(spacing)) or np.any(spacing < MIN_SPACING_MM)
            or np.any(spacing > MAX_SPACING_MM)):
        shown = ", ".join(f"{float(v):g}" for v in spacing)
        where = f"the {what} '{name}'" if name else f"the {what}"
        raise InputError(f"{where} has an implausible voxel spacing ({shown}) mm",
                         f"fix the header: CT spacing must lie in [{MIN_SPACING_MM:g}, {MAX_SPACING_MM:g}] mm")


def _nifti_header(path: Path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(352)
    except (OSError, EOFError, zlib.error):
        return None
    if len(raw) < 348:
        return None
    for endian in "<>":
        if struct.unpack(endian + "i", raw[:4])[0] == 348:
            break
    else:
        return None  # not NIfTI-1 (NIfTI-2 or Analyze): the header checks above suffice
    dim = struct.unpack(endian + "8h", raw[40:56])
    datatype, bitpix = struct.unpack(endian + "2h", raw[70:74])
    pixdim = struct.unpack(endian + "8f", raw[76:108])
    vox_offset = struct.unpack(endian + "f", raw[108:112])[0]
    magic = raw[344:348]
    return {"endian": endian, "dim": dim, "datatype": datatype, "bitpix": bitpix,
            "pixdim": pixdim, "vox_offset": vox_offset, "single_file": magic == b"n+1\x00"}


def check_nifti(path: Path, what: str) -> None:
    """Raw NIfTI-1 header spacing, and every declared data byte present and finite."""
    hdr = _nifti_header(path)
    if hdr is None:
        return
    ndim = max(1, min(int(hdr["dim"][0]), 7))
    check_spacing(hdr["pixdim"][1:4], what, path.name)
    if not hdr["single_file"] or not (0 < hdr["bitpix"] <= 128) or hdr["vox_offset"] < 348:
        return
    expected = int(np.prod([max(1, d) for d in hdr["dim"][1:ndim + 1]], dtype=np.int64)) * hdr["bitpix"] // 8
    dtype = NIFTI_DTYPES.get(hdr["datatype"])
    is_float = dtype is not None and dtype.startswith("f")
    np_dtype = np.dtype(hdr["endian"] + dtype) if dtype else None
    compressed = path.name.lower().endswith(".gz")
    if not is_float and _complete_without_reading(path, compressed, int(hdr["vox_offset"]) + expected, what):
        return
    opener = gzip.open if compressed else open
    seen, bad, carry = 0, 0, b""
    try:
        with opener(path, "rb") as fh:
            fh.read(int(hdr["vox_offset"]))
            while seen < expected:
                block = fh.read(min(CHUNK, expected - seen))
                if not block:
                    break
                seen += len(block)
                if is_float:
                    data = carry + block
                    usable = len(data) - len(data) % np_dtype.itemsize
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:usable], np_dtype))))
                    carry = data[usable:]
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise InputError(f"the {what} file '{path.name}' is damaged or truncated ({type(exc).__name__} "
                         f"after {seen / 2**20:.1f} of {expected / 2**20:.1f} MiB of voxel data)",
                         "copy or export the file again (the download or transfer was incomplete)") from None
    if seen < expected:
        raise InputError(f"the {what} file '{path.name}' is truncated: {seen / 2**20:.1f} of the "
                         f"{expected / 2**20:.1f} MiB of voxel data its header declares are present",
                         "copy or export the file again (the download or transfer was incomplete)")
    if bad:
        raise InputError(f"the {what} file '{path.name}' holds {bad} NaN/Inf voxels",
                         "re-export the image; every voxel must be a finite value")


def _complete_without_reading(path: Path, compressed: bool, total: int, what: str) -> bool:
    """O(1) completeness of integer data: the file size, or the gzip trailer's ISIZE (the
    uncompressed length mod 2^32) matching the declared length exactly. True when that settles
    it; False sends the caller to the streaming check."""
    size = path.stat().st_size
    if not compressed:
        if size < total:
            raise InputError(f"the {what} file '{path.name}' is truncated: {max(0, size - 352) / 2**20:.1f} "
                             f"of the {(total - 352) / 2**20:.1f} MiB of voxel data its header declares "
                             "are present", "copy or export the file again (the download or transfer "
                             "was incomplete)")
        return True
    if total >= 2**32 or size < 18:
        return False
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        isize = struct.unpack("<I", fh.read(4))[0]
    # equal: complete (a cut stream ends in arbitrary bytes); anything else is settled by
    # decompressing (a truncated stream fails, a valid file with trailing padding passes)
    return isize == total


def check_metaimage(path: Path, reader: sitk.ImageFileReader, what: str) -> None:
    """An uncompressed single-file MetaImage holds all the data its header declares."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"CompressedData = True" in head or b"ElementDataFile = LOCAL" not in head:
        return
    header_len = head.index(b"ElementDataFile = LOCAL") + len(b"ElementDataFile = LOCAL")
    header_len = head.index(b"\n", header_len) + 1 if b"\n" in head[header_len:] else header_len
    itemsize = sitk.GetArrayFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).itemsize
    expected = int(np.prod(reader.GetSize(), dtype=np.int64)) * itemsize * reader.GetNumberOfComponents()
    present = path.stat().st_size - header_len
    if present < expected:
        raise InputError(f"the {what} file '{path.name}' is truncated: {present / 2**20:.1f} of the "
                         f"{expected / 2**20:.1f} MiB of voxel data its header declares are present",
                         "copy or export the file again (the download or transfer was incomplete)")


def preflight(path: Path, what: str = "image") -> None:
    """All file-level checks of an image file, before it is read."""
    reader = header_info(path)
    check_declared(reader.GetSize(), reader.GetSpacing(), what, path.name)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti(path, what)
    elif name.endswith(".mha"):
        check_metaimage(path, reader, what)


def check_dicom_slices(files, folder_name: str) -> None:
    """Every slice header of a DICOM series readable, slices evenly spaced along the normal
    (a missing or broken slice shows as a gap; ITK would stack the rest at a wrong spacing)."""
    reader = sitk.ImageFileReader()
    positions, normal = [], None
    for f in files:
        reader.SetFileName(f)
        try:
            reader.ReadImageInformation()
            ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
            if normal is None:
                iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
                normal = np.cross(iop[:3], iop[3:])
        except (RuntimeError, ValueError):
            raise InputError(f"slice '{Path(f).name}' of the DICOM series in '{folder_name}' is damaged "
                             "(its header cannot be read)", "re-export the whole series from PACS") from None
        positions.append(float(np.dot(ipp, normal)))
    if len(positions) < 3:
        return
    steps = np.diff(np.sort(positions))
    typical = float(np.median(steps))
    if typical <= 0 or np.any(np.abs(steps - typical) > max(0.01 * typical, 0.02)):
        worst = int(np.argmax(np.abs(steps - typical)))
        raise InputError(f"the DICOM series in '{folder_name}' has uneven slice positions (a step of "
                         f"{steps[worst]:.2f} mm after slice {worst + 1} of {len(positions)} where the "
                         f"others are {typical:.2f} mm: a missing, broken or duplicate slice)",
                         "re-export the complete series from PACS")
