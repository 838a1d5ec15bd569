"""SimpleITK images <-> MRML volume nodes and oriented images, without resampling.

SimpleITK (like ITK and DICOM) speaks LPS: physical point = origin + direction @ (spacing * index).
MRML speaks RAS: the IJK->RAS matrix is the same affine with the first two rows negated.
A numpy array from SimpleITK is indexed [k, j, i], which is also VTK's memory order (i fastest),
so voxel buffers are copied as they are.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

_VTK_TYPES = {np.dtype(np.uint8): "VTK_UNSIGNED_CHAR", np.dtype(np.int16): "VTK_SHORT",
              np.dtype(np.uint16): "VTK_UNSIGNED_SHORT", np.dtype(np.int32): "VTK_INT",
              np.dtype(np.float32): "VTK_FLOAT", np.dtype(np.float64): "VTK_DOUBLE"}


# ----------------------------------------------------------------------------- geometry
def ijk_to_lps(image: sitk.Image) -> np.ndarray:
    """4x4 affine from voxel index (i, j, k) to LPS millimetres."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = direction * np.asarray(image.GetSpacing(), float)[None, :]
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """4x4 affine from voxel index (i, j, k) to RAS millimetres (MRML's convention)."""
    return LPS_TO_RAS @ ijk_to_lps(image)


def ras_to_ijk(image: sitk.Image) -> np.ndarray:
    return np.linalg.inv(ijk_to_ras(image))


def vtk_matrix(array: np.ndarray):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            matrix.SetElement(row, col, float(array[row, col]))
    return matrix


def numpy_matrix(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def geometry_from_ijk_to_ras(matrix: np.ndarray) -> Tuple[tuple, tuple, tuple]:
    """(spacing, origin, direction) of a SimpleITK image for an IJK->RAS matrix."""
    lps = LPS_TO_RAS @ matrix  # the flip is its own inverse
    columns = lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    direction = columns / spacing[None, :]
    return tuple(spacing.tolist()), tuple(lps[:3, 3].tolist()), tuple(direction.ravel().tolist())


def lps_to_ras_point(point: Sequence[float]) -> np.ndarray:
    p = np.asarray(point, float)
    return np.array([-p[0], -p[1], p[2]])


# ----------------------------------------------------------------------------- voxels
def vtk_image_from_array(array: np.ndarray):
    """vtkImageData (origin 0, spacing 1) holding a deep copy of a [k, j, i] numpy array."""
    import vtk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(array)
    if array.dtype not in _VTK_TYPES:
        array = array.astype(np.float32)
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True,
                                         array_type=getattr(vtk, _VTK_TYPES[array.dtype]))
    image.GetPointData().SetScalars(scalars)
    return image


def array_from_vtk_image(image) -> np.ndarray:
    """[k, j, i] numpy copy of a vtkImageData's scalars (any extent)."""
    from vtk.util import numpy_support

    extent = image.GetExtent()
    shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    if min(shape) <= 0 or image.GetPointData().GetScalars() is None:
        return np.zeros((0, 0, 0), np.uint8)
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(shape).copy()


def oriented_image_from_array(array: np.ndarray, reference: sitk.Image,
                              offset_kji: Sequence[int] = (0, 0, 0)):
    """vtkOrientedImageData on ``reference``'s grid; ``array`` may be a sub-box starting at
    voxel ``offset_kji`` (kept as the VTK extent, so no voxel moves)."""
    import slicer

    oriented = slicer.vtkOrientedImageData()
    vtk_image = vtk_image_from_array(array)
    oriented.ShallowCopy(vtk_image)
    k0, j0, i0 = (int(v) for v in offset_kji)
    nk, nj, ni = array.shape
    oriented.SetExtent(i0, i0 + ni - 1, j0, j0 + nj - 1, k0, k0 + nk - 1)
    oriented.SetImageToWorldMatrix(vtk_matrix(ijk_to_ras(reference)))
    return oriented


def array_on_reference(oriented, reference: sitk.Image) -> np.ndarray:
    """Voxels of an oriented image on ``reference``'s full grid ([k, j, i], zeros outside).

    When both share the same IJK->RAS matrix (what LiverLVT writes, and what Slicer's editor
    keeps) this is an exact copy by extent; otherwise the oriented image is resampled by
    nearest neighbour with Slicer's own resampler."""
    import slicer

    size = reference.GetSize()
    out = np.zeros(size[::-1], np.uint8)
    if oriented is None or oriented.IsEmpty():
        return out
    matrix = numpy_matrix(_image_to_world(oriented))
    if not np.allclose(matrix, ijk_to_ras(reference), atol=1e-4):
        target = oriented_image_from_array(out, reference)
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            oriented, target, resampled, False, False)
        oriented = resampled
    data = array_from_vtk_image(oriented)
    if data.size == 0:
        return out
    i0, _, j0, _, k0, _ = oriented.GetExtent()
    lo = np.array([k0, j0, i0])
    hi = lo + np.array(data.shape)
    clip_lo, clip_hi = np.maximum(lo, 0), np.minimum(hi, out.shape)
    if np.any(clip_hi <= clip_lo):
        return out
    src = tuple(slice(a - o, b - o) for a, b, o in zip(clip_lo, clip_hi, lo))
    dst = tuple(slice(a, b) for a, b in zip(clip_lo, clip_hi))
    out[dst] = data[src]
    return out


def _image_to_world(oriented):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    oriented.GetImageToWorldMatrix(matrix)
    return matrix


# ----------------------------------------------------------------------------- volume nodes
def volume_node_from_image(scene, image: sitk.Image, name: str = "CT",
                           node_class: str = "vtkMRMLScalarVolumeNode"):
    """Add a scalar volume node holding ``image`` (voxels and geometry) to ``scene``."""
    array = sitk.GetArrayFromImage(image)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    node = scene.AddNewNodeByClass(node_class, name)
    node.SetAndObserveImageData(vtk_image_from_array(array))
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras(image)))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None and node_class == "vtkMRMLScalarVolumeNode":
        display.AutoWindowLevelOff()
        display.SetWindowLevel(350.0, 40.0)  # abdominal soft-tissue window (W 350, L 40 HU)
    return node


def image_from_volume_node(node, pixel_type: Optional[int] = None) -> sitk.Image:
    """SimpleITK copy of a volume node (geometry from its IJK->RAS matrix; parent transforms
    are not applied: LiverLVT works on the volume's own grid)."""
    import vtk

    array = array_from_vtk_image(node.GetImageData())
    image = sitk.GetImageFromArray(array)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    spacing, origin, direction = geometry_from_ijk_to_ras(numpy_matrix(matrix))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return sitk.Cast(image, pixel_type) if pixel_type is not None else image
