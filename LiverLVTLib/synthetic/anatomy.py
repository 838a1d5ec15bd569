"""The phantom's anatomy painted onto a grid, one structure group at a time, in a fixed order
(the random draws — bowel layout, textures, noise — come in that order, so a seed gives the
same image). Positions are patient LPS mm; HU values come from :data:`phantom.HU`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
from scipy import ndimage

from .shapes import _capsule, _ellipsoid, _elliptic_cylinder, _Grid, _paint, _smooth_noise

Z_ALL = (-1e4, 1e4)


@dataclass
class Canvas:
    """The CT being drawn (HU), its labels, and where the liver may not grow."""

    grid: _Grid
    hu: np.ndarray
    lab: np.ndarray
    liver_bg: np.ndarray
    rng: np.random.Generator
    HU: Dict[str, float]

    @classmethod
    def new(cls, grid: _Grid, rng, hu_table) -> "Canvas":
        return cls(grid, np.full(grid.shape, hu_table["air"], np.float32),
                   np.zeros(grid.shape, np.uint8), np.zeros(grid.shape, bool), rng, hu_table)

    def paint(self, sl, mask, value) -> None:
        _paint(self.hu, sl, mask, value)

    def organ(self, sl, mask, value, block_liver: bool = True) -> None:
        """Paint an organ; the liver is later kept out of it."""
        _paint(self.hu, sl, mask, value)
        if block_liver and sl is not None and mask is not None:
            self.liver_bg[sl] |= np.broadcast_to(mask, self.liver_bg[sl].shape)


def body_wall(c: Canvas) -> None:
    """Subcutaneous fat, abdominal muscle, visceral fat inside the peritoneal cavity (the liver
    stays inside the cavity)."""
    g, H = c.grid, c.HU
    c.paint(*_elliptic_cylinder(g, (0, 5), (160, 122), Z_ALL), H["fat"])
    c.paint(*_elliptic_cylinder(g, (0, 5), (150, 112), Z_ALL), H["muscle"])
    cav_sl, cavity = _elliptic_cylinder(g, (0, 5), (140, 102), Z_ALL)
    c.paint(cav_sl, cavity, H["visceral_fat"])
    if cav_sl is not None:
        c.liver_bg[...] = True
        c.liver_bg[cav_sl] &= ~np.broadcast_to(cavity, c.liver_bg[cav_sl].shape)


def ribs(c: Canvas) -> None:
    """Oblique bony bands in the wall (descending anteriorly), upper abdomen only."""
    x, y, z = c.grid.coords(tuple(slice(0, n) for n in c.grid.shape))
    ang = np.arctan2(np.float32(1.0) * (y - 5) / 112, x / np.float32(150))
    rad = np.sqrt((x / np.float32(145)) ** 2 + ((y - 5) / np.float32(107)) ** 2)
    wall = np.abs(rad - 1.0) < np.float32(0.03)
    lateral = np.cos(ang) ** 2 > 0.15  # not over the front/back midline
    band = np.mod(z + 40 * np.sin(ang) + 25 * np.cos(ang), 26.0) < 7.0  # posterior ribs higher
    c.hu[wall & lateral & band & (z > -45 + 15 * np.abs(np.sin(ang)))] = c.HU["bone_cortex"] * 0.7


def spine(c: Canvas) -> None:
    """Vertebral body (marrow + cortex, discs every 32 mm), canal, posterior elements,
    paraspinal muscles and psoas."""
    g, H = c.grid, c.HU
    for sx in (-36, 36):
        c.paint(*_elliptic_cylinder(g, (sx, 98), (24, 20), Z_ALL), H["muscle"])
    c.organ(*_elliptic_cylinder(g, (0, 66), (22, 20), Z_ALL), H["bone_cortex"])
    c.paint(*_elliptic_cylinder(g, (0, 66), (19, 17), Z_ALL), H["bone_marrow"])
    sl, body = _elliptic_cylinder(g, (0, 66), (22, 20), Z_ALL)
    if sl is not None:
        _, _, z = g.coords(sl)
        c.paint(sl, body & (np.mod(z, 32.0) < 7.0), H["muscle"] + 30)
    c.paint(*_elliptic_cylinder(g, (0, 96), (11, 9), Z_ALL), H["bone_cortex"] * 0.8)
    c.paint(*_elliptic_cylinder(g, (0, 95), (7, 6), Z_ALL), H["csf"])
    c.paint(*_elliptic_cylinder(g, (0, 114), (4, 9), Z_ALL), H["bone_cortex"] * 0.8)
    for sx in (-34, 34):  # psoas, lower abdomen
        c.paint(*_elliptic_cylinder(g, (sx, 60), (14, 14), (-1e4, -20)), H["muscle"])


def lungs_bowel_pancreas(c: Canvas) -> None:
    """Lung bases over the diaphragm (the liver dome is drawn over them), bowel loops laid out
    from the seed (gas bubbles non-dependent: anterior when supine), pancreas, aorta."""
    g, H, rng = c.grid, c.HU, c.rng
    c.paint(*_ellipsoid(g, (-78, 34, 172), (62, 84, 112)), H["lung"])
    c.paint(*_ellipsoid(g, (78, 34, 176), (60, 80, 108)), H["lung"])
    for _ in range(9):
        centre = (rng.uniform(-70, 80), rng.uniform(-75, 15), rng.uniform(-95, -40))
        semi = (rng.uniform(12, 22), rng.uniform(12, 22), rng.uniform(15, 30))
        rot = rng.uniform(0, 180)
        c.organ(*_ellipsoid(g, centre, semi, rot), H["bowel_wall"], False)
        inner = tuple(s - 3 for s in semi)
        c.paint(*_ellipsoid(g, centre, inner, rot), H["bowel_content"])
        if rng.uniform() < 0.4:
            c.paint(*_ellipsoid(g, (centre[0], centre[1] - inner[1] * 0.6, centre[2]),
                                (inner[0] * 0.6, inner[1] * 0.35, inner[2] * 0.6), rot), H["air"])
    c.paint(*_ellipsoid(g, (12, 8, -8), (55, 12, 13), 15), H["pancreas"])
    # aorta left-anterior of the spine
    c.organ(*_elliptic_cylinder(g, (14, 40), (12, 12), Z_ALL), H["aorta"])


def ivc_and_organs(c: Canvas, neighbours: bool) -> None:
    """The IVC (retrohepatic groove; kept out of the liver even without neighbours), then the
    kidneys (cortex, sinus fat, pelvis), spleen, stomach with an air-fluid level, gallbladder."""
    g, H = c.grid, c.HU
    ivc_sl, ivc = _elliptic_cylinder(g, (-24, 40), (12, 11), (-1e4, 100))
    if not neighbours:
        if ivc_sl is not None:
            c.liver_bg[ivc_sl] |= np.broadcast_to(ivc, c.liver_bg[ivc_sl].shape)
        return
    c.organ(ivc_sl, ivc, H["ivc"])
    for kx, kz in ((-72, -48), (72, -34)):
        c.organ(*_ellipsoid(g, (kx, 66, kz), (28, 26, 55), 20 * np.sign(kx)), H["kidney_cortex"])
        c.paint(*_ellipsoid(g, (kx * 0.9, 62, kz), (10, 10, 25)), H["kidney_sinus"])
        c.paint(*_ellipsoid(g, (kx * 0.85, 60, kz), (5, 6, 10)), H["renal_pelvis"])
    c.organ(*_ellipsoid(g, (98, 52, 34), (28, 56, 52), 35), H["spleen"])
    st_c, st_semi, st_rot = (88, -14, 30), (38, 36, 46), -30
    c.organ(*_ellipsoid(g, st_c, st_semi, st_rot), H["stomach_wall"])
    sl, lumen = _ellipsoid(g, st_c, tuple(s - 5 for s in st_semi), st_rot)
    if sl is not None:
        _, y, _ = g.coords(sl)
        c.paint(sl, lumen, H["stomach_fluid"])
        c.paint(sl, lumen & (y < st_c[1] - 12), H["air"])
    c.organ(*_ellipsoid(g, (-44, -58, -6), (16, 15, 34), 20), H["gallbladder"])


def _lobe_q(x, y, z, centre, semi, rot_deg):
    t = math.radians(rot_deg)
    dx, dy = x - np.float32(centre[0]), y - np.float32(centre[1])
    u = dx * np.float32(math.cos(t)) + dy * np.float32(math.sin(t))
    v = -dx * np.float32(math.sin(t)) + dy * np.float32(math.cos(t))
    return (u / semi[0]) ** 2 + (v / semi[1]) ** 2 + ((z - np.float32(centre[2])) / semi[2]) ** 2


def liver(c: Canvas, right_lobe, left_lobe, liver_hu: float) -> np.ndarray:
    """Smooth union of a right and a left lobe, lobulated, flattened inferiorly (visceral
    surface), inside the cavity and outside the organs drawn before; label 1."""
    (rc, rs, rr), (lc, ls, lr) = right_lobe, left_lobe
    lo = np.minimum(np.subtract(rc, max(rs[:2])), np.subtract(lc, max(ls[:2])))
    hi = np.maximum(np.add(rc, max(rs[:2])), np.add(lc, max(ls[:2])))
    lo[2], hi[2] = min(rc[2] - rs[2], lc[2] - ls[2]), max(rc[2] + rs[2], lc[2] + ls[2])
    liver_sl = c.grid.box(lo, hi)
    mask = np.zeros(c.grid.shape, bool)
    if liver_sl is not None:
        x, y, z = c.grid.coords(liver_sl)
        k = np.float32(0.25)
        q = -k * np.logaddexp(-_lobe_q(x, y, z, rc, rs, rr) / k, -_lobe_q(x, y, z, lc, ls, lr) / k)
        q = q + np.float32(0.06) * np.sin(x / 17.0) * np.cos(y / 23.0 + z / 19.0)  # lobulation
        q = np.where(z < np.float32(-38.0) + np.float32(0.25) * (-y) + np.float32(0.2) * (x + 70),
                     np.float32(2.0), q)
        mask[liver_sl] = q <= 1.0
    mask &= ~c.liver_bg
    c.hu[mask] = np.float32(liver_hu)
    c.lab[mask] = 1
    return mask


def vessels(c: Canvas, tree: Sequence, liver_mask: np.ndarray) -> None:
    """Enhancing vessels everywhere; labelled hepatic vessel (2) only inside the liver."""
    for v in tree:
        sl, mask = _capsule(c.grid, v.start, v.end, v.diameter_mm / 2)
        if sl is None:
            continue
        c.paint(sl, mask, v.hu)
        if v.kind != "other":
            block = c.lab[sl]
            block[mask & liver_mask[sl]] = 2


def lesions(c: Canvas, items: Sequence) -> List[int]:
    """Tumors and cysts (label 3, over vessels and liver), textured; voxel count of each."""
    counts = []
    for les in items:
        value = les.hu if les.hu is not None else c.HU["cyst" if les.kind == "cyst" else "tumor"]
        sl, mask = _ellipsoid(c.grid, les.center, les.semi_axes(), les.rotation_deg)
        if sl is None:
            counts.append(0)
            continue
        texture = les.texture_hu if les.texture_hu is not None else (8.0 if les.kind != "cyst" else 0.0)
        block = c.hu[sl]
        if texture > 0:
            tex = _smooth_noise(block.shape, c.rng, texture, 1.5)
            block[mask] = np.float32(value) + tex[mask]
        else:
            block[mask] = np.float32(value)
        c.lab[sl][mask] = 3
        counts.append(int(mask.sum()))
    return counts


def scanner(c: Canvas, noise_hu: float, blur: bool) -> None:
    """Liver parenchymal texture, partial-volume blur (scanner PSF ~0.7 mm in-plane, slice
    profile ~0.4 x slice thickness) and correlated noise; HU rounded."""
    g = c.grid
    if noise_hu > 0:
        c.hu += np.where(c.lab > 0, _smooth_noise(g.shape, c.rng, 4.0, 2.0), np.float32(0))
    if blur:
        along_si = np.abs(g.direction[2])  # how much each array axis runs cranio-caudally
        sig_mm = 0.7 * (1 - along_si) + 0.4 * g.spacing * along_si
        sig = np.clip(sig_mm / g.spacing, 0.3, 0.8)[::-1]
        ndimage.gaussian_filter(c.hu, sig, output=c.hu, truncate=2.0)
    if noise_hu > 0:
        c.hu += _smooth_noise(g.shape, c.rng, noise_hu, 0.6)
    np.round(c.hu, out=c.hu)
