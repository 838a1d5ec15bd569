"""Self-contained HTML report: stage and reasons first, volumetry, the lesion table, each lesion's
measurement slice with its outline and the two axial diameters, and a 3-D view of the models.

Images are PNGs embedded as base64 (one file to e-mail or archive). Axial slices are shown in
radiological convention (patient's right on the image's left, anterior up). The 3-D view is
rendered off-screen by VTK; when no OpenGL context can be had it falls back to a matplotlib
projection of the same meshes (and says so under the picture).
"""
from __future__ import annotations

import base64
import html
import io as _io
import os
from datetime import datetime
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ..analysis.lesions import Grid, crop_image, lesion_masks, to_axial
from ..core.io import write_text

WINDOW_HU = (-110.0, 240.0)  # abdominal soft-tissue / liver window (W 350, L 65)
CLASS_COLORS = {"tumor": "#e8c21b", "indeterminate": "#f08a24", "cyst": "#3cc8d0"}


FIGURE_DPI = 90  # 4.2 in -> 378 px lesion cards (shown 318 px wide), 576 px 3-D fallback


def _png(fig) -> str:
    """PNG (base64) of a :func:`_figure`: drawn once by Agg at a fixed layout (no
    ``bbox_inches="tight"``, which draws the figure twice)."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, pil_kwargs={"compress_level": 1})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(size_in, margins=(0.02, 0.02, 0.98, 0.92)):
    """A matplotlib Figure on the Agg canvas, without pyplot (no GUI backend, no global figure
    registry to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size_in)
    FigureCanvasAgg(fig)
    left, bottom, right, top = margins
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    return fig


# ----------------------------------------------------------------------------- lesion slices
def lesion_figure(les: Dict, ct: sitk.Image, labels: sitk.Image, comp_mask: np.ndarray,
                  box) -> str:
    """PNG (base64) of the lesion's measurement slice: CT, outlines, both diameters.
    ``comp_mask``: the lesion's voxels, either over the whole grid or as the crop of ``box``
    (what :func:`LiverLVTLib.analysis.lesions.lesion_masks` gives); only the crop around the
    lesion is read, resampled and drawn."""
    grid = Grid.of(ct)
    shape = sitk.GetArrayViewFromImage(labels).shape
    size_mm = max(40.0, 1.6 * float(les["max_3d_mm"] or 0))
    margin = [int(np.ceil(size_mm / 2 / s)) for s in grid.spacing[::-1]]
    sl = tuple(slice(max(0, b.start - m), min(n, b.stop + m)) for b, m, n in zip(box, margin, shape))
    lab_crop = crop_image(labels, sl)
    ct_ax = to_axial(crop_image(ct, sl), sitk.sitkLinear, -1024.0)
    lab_ax = to_axial(lab_crop)
    mask_img = sitk.GetImageFromArray(_mask_in(comp_mask, box, sl).astype(np.uint8))
    mask_img.CopyInformation(lab_crop)
    mask_ax = to_axial(mask_img)
    g = Grid.of(ct_ax)
    z = int(round((les["axial_slice_s_mm"] - g.origin[2]) / g.spacing[2]))
    z = min(max(z, 0), ct_ax.GetSize()[2] - 1)
    img = sitk.GetArrayViewFromImage(ct_ax)[z]
    lab = sitk.GetArrayViewFromImage(lab_ax)[z]
    mask = sitk.GetArrayViewFromImage(mask_ax)[z] > 0
    x0, y0 = g.origin[0], g.origin[1]
    x1 = x0 + (img.shape[1] - 1) * g.spacing[0]
    y1 = y0 + (img.shape[0] - 1) * g.spacing[1]
    hx, hy = g.spacing[0] / 2, g.spacing[1] / 2
    fig = _figure((4.2, 4.2))
    ax = fig.add_subplot()
    ax.imshow(img, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1],
              extent=(x0 - hx, x1 + hx, y1 + hy, y0 - hy), interpolation="bilinear")
    xs = x0 + np.arange(img.shape[1]) * g.spacing[0]
    ys = y0 + np.arange(img.shape[0]) * g.spacing[1]
    for values, color, width in (((lab > 0).astype(float), "#c07050", 0.8),
                                 ((lab == 2).astype(float), "#4a78ff", 0.8),
                                 ((lab == 3).astype(float), "#ff9040", 0.6),
                                 (mask.astype(float), CLASS_COLORS.get(les["classification"], "r"), 1.4)):
        if values.any() and not values.all():
            ax.contour(xs, ys, values, levels=[0.5], colors=color, linewidths=width)
    (p0, p1), (q0, q1) = les["axial_endpoints_ras"]
    to_lps = lambda p: (-p[0], -p[1])  # noqa: E731
    for (a, b), color, text in (((p0, p1), "#ff3030", f"{les['longest_axial_mm']:.1f} mm"),
                                ((q0, q1), "#30e030", f"{les['short_axis_mm']:.1f} mm")):
        (ax_, ay_), (bx_, by_) = to_lps(a), to_lps(b)
        ax.plot([ax_, bx_], [ay_, by_], color=color, lw=1.6, marker="+", ms=8)
        ax.annotate(text, (bx_, by_), color=color, fontsize=9, xytext=(4, 4),
                    textcoords="offset points", weight="bold")
    ax.set_xlim(x0 - hx, x1 + hx)
    ax.set_ylim(y1 + hy, y0 - hy)
    ax.text(0.01, 0.5, "R", transform=ax.transAxes, color="w", fontsize=10, va="center")
    ax.text(0.96, 0.5, "L", transform=ax.transAxes, color="w", fontsize=10, va="center")
    ax.text(0.5, 0.97, "A", transform=ax.transAxes, color="w", fontsize=10, ha="center", va="top")
    ax.set_title(f"#{les['id']} {les['classification']}: axial slice S {les['axial_slice_s_mm']:.1f} mm",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


def _mask_in(comp_mask: np.ndarray, box, sl) -> np.ndarray:
    """The lesion mask over the figure's crop ``sl`` (which holds ``box``), from a whole-grid
    mask or a ``box`` crop (a box covering the whole grid reads the same either way)."""
    if comp_mask.shape != tuple(b.stop - b.start for b in box):
        return np.asarray(comp_mask[sl], bool)
    out = np.zeros([s.stop - s.start for s in sl], bool)
    out[tuple(slice(b.start - s.start, b.stop - s.start) for b, s in zip(box, sl))] = comp_mask
    return out


# ----------------------------------------------------------------------------- 3-D view
def _render_vtk(surfaces, size=(640, 520)) -> Optional[str]:
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL backend)
        from vtkmodules.vtkIOImage import vtkPNGWriter
        from vtkmodules.vtkRenderingCore import (
            vtkActor,
            vtkPolyDataMapper,
            vtkRenderer,
            vtkRenderWindow,
            vtkWindowToImageFilter,
        )

        from .meshes import COLORS

        ren = vtkRenderer()
        ren.SetBackground(0.08, 0.08, 0.1)
        for stem, kind, poly in surfaces:
            if poly.GetNumberOfPoints() == 0 or stem == "tumors":
                continue
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(poly)
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*COLORS.get(kind, (0.9, 0.9, 0.2)))
            if kind == "liver":
                actor.GetProperty().SetOpacity(0.28)
            ren.AddActor(actor)
        win = vtkRenderWindow()
        win.SetOffScreenRendering(1)
        win.AddRenderer(ren)
        win.SetSize(*size)
        cam = ren.GetActiveCamera()
        # anterior view, patient upright: camera in front (-y in LPS) looking posterior,
        # superior (+z) up -> the patient's right appears on the viewer's left
        cam.SetPosition(0, -1, 0)
        cam.SetFocalPoint(0, 0, 0)
        cam.SetViewUp(0, 0, 1)
        ren.ResetCamera()
        cam.Azimuth(-25)
        cam.Elevation(10)
        ren.ResetCameraClippingRange()
        win.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(win)
        grab.Update()
        png = vtkPNGWriter()
        png.SetInputConnection(grab.GetOutputPort())
        png.WriteToMemoryOn()
        png.SetCompressionLevel(1)
        png.Write()
        data = bytes(memoryview(png.GetResult()))
        win.Finalize()
        pixels = grab.GetOutput().GetPointData().GetScalars()
        if pixels is None or pixels.GetRange(0)[1] - pixels.GetRange(0)[0] < 10:
            return None  # blank picture: no working OpenGL context
        return base64.b64encode(data).decode("ascii")
    except Exception:  # noqa: BLE001 -- any rendering failure falls back to matplotlib
        return None


def _render_mpl(surfaces) -> str:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from vtkmodules.util.numpy_support import vtk_to_numpy

    from .meshes import COLORS

    fig = _figure((6.4, 5.2), (0.0, 0.02, 1.0, 0.98))
    ax = fig.add_subplot(projection="3d")
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for stem, kind, poly in surfaces:
        if poly.GetNumberOfPoints() == 0 or stem == "tumors":
            continue
        pts = vtk_to_numpy(poly.GetPoints().GetData())
        cells = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
        step = max(1, len(cells) // 20000)
        ras = pts * [-1, -1, 1]
        tri = ras[cells[::step]]
        coll = Poly3DCollection(tri, facecolor=COLORS.get(kind, (0.9, 0.9, 0.2)),
                                alpha=0.15 if kind == "liver" else 0.9, linewidth=0)
        ax.add_collection3d(coll)
        lo, hi = np.minimum(lo, ras.min(0)), np.maximum(hi, ras.max(0))
    if np.all(np.isfinite(lo)):
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2
        ax.set_xlim(centre[0] + half, centre[0] - half)  # patient right on the left
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.view_init(elev=10, azim=-90)
    ax.set_xlabel("R-L (mm)")
    ax.set_zlabel("I-S (mm)")
    return _png(fig)


def render_3d(surfaces) -> tuple:
    """(png base64, how) -- VTK off-screen, else matplotlib."""
    png = _render_vtk(surfaces)
    if png:
        return png, "VTK off-screen rendering, anterior view (patient's right on the left)"
    return _render_mpl(surfaces), ("matplotlib projection of the meshes (no OpenGL context for "
                                   "VTK here), anterior view")


# ----------------------------------------------------------------------------- HTML
CSS = """body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{margin:0 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:28px}
.stage{display:flex;gap:18px;flex-wrap:wrap}.box{border:2px solid #888;border-radius:8px;padding:10px 14px;flex:1;min-width:300px}
.big{font-size:26px;font-weight:700}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td.l{text-align:left}.note{color:#555;font-size:12px}.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px;width:330px;font-size:12px}.card img{width:100%}
.tumor{color:#9a7b00}.cyst{color:#138a91}.indeterminate{color:#c25e00}.warn{color:#b00020}"""


def _fmt(v, digits=1, unit=""):
    if v is None:
        return "&ndash;"
    return f"{v:.{digits}f}{unit}"


def _li(items) -> str:
    return "".join(f"<li>{html.escape(x)}</li>" for x in items)


def _header_html(result: Dict, title: str) -> List[str]:
    esc, image = html.escape, result["image"]
    return [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>",
            f"<h1>{esc(title)}</h1><div class='note'>Generated {datetime.now():%Y-%m-%d %H:%M} "
            f"by LiverLVT &middot; image {image['size']} voxels, spacing "
            f"{', '.join(f'{s:.2f}' for s in image['spacing_mm'])} mm, orientation "
            f"{esc(str(image['orientation']))} &middot; research software, not a "
            "medical device: check every finding on the images.</div>"]


def _stage_html(result: Dict) -> List[str]:
    """Stage first: the seed paper's CT rule and the AJCC 8th T category, each with its reasons."""
    esc = html.escape
    st = result["staging"]
    paper, ajcc = st["paper"], st["ajcc8"]
    group = f"stage {ajcc['stage_group']}" if ajcc["stage_group"] else "no stage group (N/M unknown)"
    return ["<h2>Stage</h2><div class='stage'>",
            f"<div class='box'><div>Seed paper CT rule (Kim et al. 2024)</div>"
            f"<div class='big'>Stage {paper['stage']}</div><ul>{_li(paper['rationale'])}</ul></div>",
            f"<div class='box'><div>AJCC 8th edition (CT T category)</div>"
            f"<div class='big'>{esc(ajcc['T'])} {esc(ajcc['N'])} {esc(ajcc['M'])} &middot; "
            f"{esc(group)}</div><ul>{_li(ajcc['rationale'])}</ul></div></div>",
            f"<p class='note'>Major vessel: diameter at the contact &ge; "
            f"{st['major_vessel_mm']:g} mm. Cyst rule: {esc(result['settings']['cyst_rule'])}. "
            f"{esc(paper.get('rule_note', ''))}</p>"]


def _volumetry_html(result: Dict) -> str:
    lv = result["liver"]
    return ("<h2>Volumetry</h2><table><tr><th>Whole liver</th><th>Parenchyma</th><th>Hepatic vessels"
            "</th><th>Tumor (incl. indeterminate)</th><th>Cysts</th><th>Tumor burden</th></tr>"
            f"<tr><td>{lv['volume_ml']:.0f} mL</td><td>{lv['parenchyma_volume_ml']:.0f} mL</td>"
            f"<td>{result['vessels']['volume_ml']:.1f} mL</td><td>{result['tumor_volume_ml']:.1f} mL</td>"
            f"<td>{result['cyst_volume_ml']:.1f} mL</td><td>{result['tumor_burden_percent']:.2f} %</td>"
            "</tr></table>")


def _lesion_row(les: Dict) -> str:
    vc = les["vessel_contact"]
    contact = (f"yes, vessel {_fmt(vc['max_vessel_diameter_mm'])} mm, "
               f"{_fmt(vc['contact_area_mm2'], 0)} mm&sup2;" if vc["in_contact"] else "no")
    r, a, s = les["centroid_ras"]
    return (f"<tr><td>{les['id']}</td><td class='l {les['classification']}'>"
            f"{les['classification']}</td><td>{les['volume_ml']:.2f}</td>"
            f"<td>{les['longest_axial_mm']:.1f} &times; {les['short_axis_mm']:.1f}</td>"
            f"<td>{les['max_3d_mm']:.1f}</td><td>{les['mean_hu']:.0f} &plusmn; {les['std_hu']:.0f}</td>"
            f"<td>{_fmt(les['cyst_fit_mean_hu'], 0)}</td><td class='l'>{contact}</td>"
            f"<td>{r:.0f}, {a:.0f}, {s:.0f}</td><td class='l'>{html.escape(les['triage_reason'])}</td></tr>")


def _lesions_html(result: Dict) -> str:
    rows = [_lesion_row(les) for les in result["lesions"]]
    if not rows:
        return "<h2>Lesions</h2><p>No lesion (label 3) in the label map.</p>"
    return ("<h2>Lesions</h2><table><tr><th>#</th><th>Class</th><th>Volume mL</th><th>Axial long "
            "&times; short mm</th><th>Max 3-D mm</th><th>HU mean &plusmn; SD</th><th>Gaussian-fit HU"
            "</th><th>Hepatic vessel contact</th><th>Centroid R, A, S mm</th><th>Triage</th></tr>"
            + "".join(rows) + "</table><p class='note'>Axial diameters: longest in the patient's axial "
            "plane and the longest perpendicular to it in the same slice (RECIST/WHO). Max 3-D: "
            "greatest distance between two surface points. Indeterminate lesions count as tumor.</p>")


def _figures_html(result: Dict, lesion_pngs: Dict[int, str], view_png: str, view_how: str) -> List[str]:
    parts = []
    if lesion_pngs:
        parts.append("<h2>Measurement slices</h2><div class='grid'>")
        for les in result["lesions"]:
            if les["id"] in lesion_pngs:
                parts.append(
                    f"<div class='card'><img src='data:image/png;base64,{lesion_pngs[les['id']]}'>"
                    f"<div>#{les['id']} {les['classification']}: <span style='color:#d00'>"
                    f"long {les['longest_axial_mm']:.1f} mm</span>, <span style='color:#080'>short "
                    f"{les['short_axis_mm']:.1f} mm</span>, max 3-D {les['max_3d_mm']:.1f} mm, "
                    f"{les['volume_ml']:.2f} mL</div></div>")
        parts.append("</div><p class='note'>Outlines: liver brown, vessels blue, this lesion "
                     "in its class colour, other lesions orange. Radiological view.</p>")
    if view_png:
        parts.append(f"<h2>3-D view</h2><img style='max-width:100%' "
                     f"src='data:image/png;base64,{view_png}'><p class='note'>{html.escape(view_how)}. "
                     "Liver translucent brown, hepatic vessels blue, tumors yellow, "
                     "indeterminate orange, cysts cyan. Models (LPS, Slicer convention) are in "
                     "models/.</p>")
    return parts


def build_html(result: Dict, lesion_pngs: Dict[int, str], view_png: str, view_how: str,
               title: str = "LiverLVT analysis") -> str:
    """The report page: stage and reasons first, volumetry, lesion table, figures, notes."""
    parts = [*_header_html(result, title), *_stage_html(result), _volumetry_html(result),
             _lesions_html(result), *_figures_html(result, lesion_pngs, view_png, view_how),
             "<h2>Notes</h2><ul>" + _li(result["notes"]) + "</ul></body></html>"]
    return "\n".join(parts)


def write_report(result: Dict, ct: sitk.Image, labels: sitk.Image, path, surfaces=None,
                 title: str = "LiverLVT analysis", masks: Optional[Dict] = None) -> str:
    """Write the HTML report. ``masks``: :func:`lesion_masks` of ``labels`` for these lesions
    when the caller already has them (the meshes use the same), else they are found here."""
    if masks is None:
        masks = lesion_masks(sitk.GetArrayViewFromImage(labels), result["lesions"])
    pngs = {}
    for les in result["lesions"]:  # each lesion's own voxels (its record's seed), on its crop
        if les["id"] in masks:
            box, crop = masks[les["id"]]
            pngs[les["id"]] = lesion_figure(les, ct, labels, crop, box)
    view, how = ("", "")
    if surfaces is not None:
        view, how = render_3d(surfaces)
    write_text(build_html(result, pngs, view, how, title), path)
    return str(path)
