"""Geometry for the phantom: a voxel grid of any orientation/spacing/tilt that gives the patient
LPS coordinates of sub-blocks, analytic shapes (ellipsoids, elliptic cylinders, capsules) as
(slices, mask) pairs on it, and correlated noise."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

Vec3 = Tuple[float, float, float]

AXIS_VECTORS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0),
                "S": (0, 0, 1), "I": (0, 0, -1)}

# Portal-venous phase attenuation (HU), typical literature values.


def direction_from_orientation(orientation: str, tilt_deg: float = 0.0) -> np.ndarray:
    """3x3 direction matrix (columns = array axes i, j, k in LPS) for e.g. "LAI"."""
    code = orientation.upper()
    if len(code) != 3 or any(c not in AXIS_VECTORS for c in code):
        raise ValueError(f"orientation must be three letters from L/R, P/A, S/I, got {orientation!r}")
    cols = np.array([AXIS_VECTORS[c] for c in code], float).T
    if abs(round(abs(np.linalg.det(cols)))) != 1:
        raise ValueError(f"orientation {orientation!r} repeats an axis")
    if tilt_deg:
        t = math.radians(tilt_deg)  # gantry tilt: rotation about the patient L-R axis
        rot = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
        cols = rot @ cols
    return cols


class _Grid:
    """Voxel grid; physical coordinates of sub-blocks as broadcastable arrays (k, j, i order)."""

    def __init__(self, size, spacing, origin, direction):
        self.size = np.asarray(size, int)  # (ni, nj, nk)
        self.spacing = np.asarray(spacing, float)
        self.origin = np.asarray(origin, float)
        self.direction = np.asarray(direction, float)
        self.matrix = self.direction * self.spacing[None, :]  # index (i,j,k) -> LPS offset
        self.inverse = np.linalg.inv(self.matrix)
        self.shape = tuple(int(n) for n in self.size[::-1])  # numpy (k, j, i)

    def box(self, lo, hi):
        """Numpy slices (k, j, i) covering the LPS box [lo, hi], or None when outside."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)])
        idx = (corners - self.origin) @ self.inverse.T
        first = np.maximum(np.floor(idx.min(0)).astype(int) - 1, 0)
        last = np.minimum(np.ceil(idx.max(0)).astype(int) + 1, self.size - 1)
        if np.any(last < first):
            return None
        return tuple(slice(int(first[a]), int(last[a]) + 1) for a in (2, 1, 0))

    def coords(self, sl=None):
        """LPS x, y, z of the voxel centres in the sub-block ``sl`` (broadcastable arrays)."""
        if sl is None:
            sl = tuple(slice(0, n) for n in self.shape)
        ks = np.arange(sl[0].start, sl[0].stop, dtype=np.float32).reshape(-1, 1, 1)
        js = np.arange(sl[1].start, sl[1].stop, dtype=np.float32).reshape(1, -1, 1)
        is_ = np.arange(sl[2].start, sl[2].stop, dtype=np.float32).reshape(1, 1, -1)
        out = []
        for row in range(3):
            value = np.float32(self.origin[row])
            for coef, idx in zip(self.matrix[row], (is_, js, ks)):
                if abs(coef) > 1e-9:
                    value = value + np.float32(coef) * idx
            out.append(np.asarray(value, np.float32))
        return out

    def image(self, array: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction.ravel()))
        return img


# ----------------------------------------------------------------------------- shapes
# Each shape returns (slices, mask) on the grid: a boolean mask of the sub-block it covers.
def _ellipsoid_q(grid, center, semi, rot_deg=0.0, pad=0.0):
    c = np.asarray(center, float)
    semi = np.asarray(semi, float)
    reach = np.array([max(semi[0], semi[1]), max(semi[0], semi[1]), semi[2]]) + pad
    sl = grid.box(c - reach, c + reach)
    if sl is None:
        return None, None
    x, y, z = grid.coords(sl)
    dx, dy, dz = x - np.float32(c[0]), y - np.float32(c[1]), z - np.float32(c[2])
    if rot_deg:
        t = math.radians(rot_deg)
        u = dx * np.float32(math.cos(t)) + dy * np.float32(math.sin(t))
        v = -dx * np.float32(math.sin(t)) + dy * np.float32(math.cos(t))
    else:
        u, v = dx, dy
    q = (u / np.float32(semi[0])) ** 2 + (v / np.float32(semi[1])) ** 2 + (dz / np.float32(semi[2])) ** 2
    return sl, q


def _ellipsoid(grid, center, semi, rot_deg=0.0):
    sl, q = _ellipsoid_q(grid, center, semi, rot_deg)
    return sl, (None if q is None else q <= 1.0)


def _elliptic_cylinder(grid, center_xy, semi_xy, z_range):
    lo = (center_xy[0] - semi_xy[0], center_xy[1] - semi_xy[1], z_range[0])
    hi = (center_xy[0] + semi_xy[0], center_xy[1] + semi_xy[1], z_range[1])
    sl = grid.box(lo, hi)
    if sl is None:
        return None, None
    x, y, z = grid.coords(sl)
    q = ((x - np.float32(center_xy[0])) / np.float32(semi_xy[0])) ** 2 + \
        ((y - np.float32(center_xy[1])) / np.float32(semi_xy[1])) ** 2
    inside = (q <= 1.0) & (z >= z_range[0]) & (z <= z_range[1])
    return sl, np.broadcast_to(inside, tuple(s.stop - s.start for s in sl))


def segment_distance(points: np.ndarray, a, b) -> np.ndarray:
    """Distance (mm) from points (..., 3) to the segment a-b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[..., None] * ab), axis=-1)


def _capsule(grid, a, b, radius):
    a, b = np.asarray(a, float), np.asarray(b, float)
    sl = grid.box(np.minimum(a, b) - radius, np.maximum(a, b) + radius)
    if sl is None:
        return None, None
    x, y, z = grid.coords(sl)
    ab = (b - a).astype(np.float32)
    den = np.float32(max(float(ab @ ab), 1e-12))
    px, py, pz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
    t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / den, 0.0, 1.0)
    d2 = (px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2
    return sl, d2 <= np.float32(radius * radius)


def _paint(array, sl, mask, value):
    if sl is not None and mask is not None:
        block = array[sl]
        block[np.broadcast_to(mask, block.shape)] = value


def _make_grid(spacing, orientation, tilt_deg, size, fov_mm, center_mm) -> _Grid:
    direction = direction_from_orientation(orientation, tilt_deg)
    spacing = np.asarray(spacing, float)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    if size is None:
        # the FOV box (patient L-R, A-P, S-I) measured along each array axis
        extent = np.abs(direction.T) @ np.asarray(fov_mm, float)
        size = np.maximum(np.round(extent / spacing).astype(int), 2)
    size = np.asarray(size, int)
    half = direction @ (spacing * (size - 1) / 2.0)
    origin = np.asarray(center_mm, float) - half
    return _Grid(size, spacing, origin, direction)


def _smooth_noise(shape, rng, sd, sigma_vox):
    """Correlated noise with standard deviation ``sd`` (white noise through a Gaussian)."""
    if sd <= 0:
        return 0.0
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, sigma_vox, output=noise, truncate=2.5)
    impulse = np.zeros((9, 9, 9), np.float32)
    impulse[4, 4, 4] = 1
    gain = float(np.sqrt((ndimage.gaussian_filter(impulse, sigma_vox, truncate=2.5) ** 2).sum()))
    noise *= np.float32(sd / max(gain, 1e-6))
    return noise
