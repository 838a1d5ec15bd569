"""Output files (JSON shape, CSV, Slicer-convention models, report), the CLI and bad inputs."""
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from vtkmodules.vtkIOGeometry import vtkSTLReader
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from LiverLVTLib import cli
from LiverLVTLib.analysis.lesions import Grid
from LiverLVTLib.analysis.measure import analyze_case
from LiverLVTLib.core.errors import InputError
from LiverLVTLib.outputs.meshes import enclosed_volume_ml, surface
from LiverLVTLib.outputs.writer import write_analysis
from LiverLVTLib.synthetic.phantom import Lesion, Vessel, beside_vessel, make_phantom

VESSEL = Vessel((-60.0, 25.0, -20.0), (-60.0, 25.0, 70.0), 12.0, "portal branch")
LESIONS = [Lesion((-95.0, 10.0, 20.0), (30.0, 30.0, 30.0), "tumor", 50.0, name="sphere"),
           Lesion(beside_vessel(VESSEL, (20.0, 20.0, 20.0), 0.5, (0, -1, 0)), (20.0, 20.0, 20.0),
                  "tumor", 50.0, name="on vessel"),
           Lesion((-40.0, -40.0, 50.0), (16.0, 16.0, 16.0), "cyst", 5.0, name="cyst")]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ph = make_phantom(spacing=(1.0, 1.0, 2.0), orientation="LAI", lesions=LESIONS,
                      vessels=[VESSEL], fov_mm=(170.0, 170.0, 130.0), center_mm=(-70.0, 0.0, 25.0))
    out = tmp_path_factory.mktemp("analysis")
    result = analyze_case(ph.ct, ph.labels, n="N0", m="M0")
    paths = write_analysis(result, ph.ct, ph.labels, out)
    return ph, result, paths, out


def test_measurements_json_shape(case):
    _, result, paths, _ = case
    data = json.loads(open(paths["measurements"]).read())
    assert data == result
    assert data["schema"] == "liverlvt.measurements/1"
    assert set(data["liver"]) >= {"volume_ml", "parenchyma_volume_ml"}
    assert "volume_ml" in data["vessels"] and "tumor_burden_percent" in data
    keys = {"id", "classification", "volume_ml", "longest_axial_mm", "short_axis_mm", "max_3d_mm",
            "centroid_ras", "mean_hu", "std_hu", "cyst_fit_mean_hu", "vessel_contact"}
    for les in data["lesions"]:
        assert keys <= set(les)
        assert set(les["vessel_contact"]) >= {"in_contact", "max_vessel_diameter_mm",
                                              "contact_area_mm2"}
        assert les["classification"] in ("tumor", "cyst", "indeterminate")
    assert set(data["staging"]["paper"]) >= {"stage", "rationale"}
    assert set(data["staging"]["ajcc8"]) >= {"T", "N", "M", "stage_group", "rationale"}
    assert data["staging"]["ajcc8"]["stage_group"] == "IIIB"  # T4 N0 M0
    assert data["staging"]["paper"]["stage"] == 4


def test_volumetry_matches_truth(case):
    ph, result, _, _ = case
    assert result["liver"]["volume_ml"] == pytest.approx(ph.truth["liver"]["volume_ml"], rel=1e-6)
    assert result["vessels"]["volume_ml"] == pytest.approx(ph.truth["vessels"]["volume_ml"], rel=1e-6)
    assert result["tumor_burden_percent"] == pytest.approx(ph.truth["tumor_burden_percent"], rel=0.01)


def test_lesions_csv(case):
    _, result, paths, _ = case
    rows = list(csv.DictReader(open(paths["lesions_csv"])))
    assert [int(r["id"]) for r in rows] == [les["id"] for les in result["lesions"]]
    assert float(rows[0]["max_3d_mm"]) == result["lesions"][0]["max_3d_mm"]


def _read_vtp(path):
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(path)
    reader.Update()
    return reader.GetOutput()


def test_models_are_lps_with_slicer_marker(case):
    ph, result, paths, out = case
    models = paths["models"]
    names = {p.split("/")[-1] for p in models}
    assert {"liver.vtp", "liver.stl", "vessels.vtp", "tumors.stl", "lesion_01_tumor.vtp",
            "lesion_03_cyst.stl"} <= names
    poly = _read_vtp(str(out / "models" / "lesion_01_tumor.vtp"))
    space = poly.GetFieldData().GetAbstractArray("SPACE")
    assert space is not None and space.GetValue(0) == "LPS"
    assert b"SPACE=LPS" in (out / "models" / "lesion_01_tumor.stl").read_bytes()[:80]
    # the sphere (centre LPS -95, 10, 20) lies where the truth puts it, in LPS
    bounds = np.asarray(poly.GetBounds()).reshape(3, 2).mean(1)
    assert bounds == pytest.approx([-95.0, 10.0, 20.0], abs=1.5)
    stl = vtkSTLReader()
    stl.SetFileName(str(out / "models" / "lesion_01_tumor.stl"))
    stl.Update()
    assert enclosed_volume_ml(stl.GetOutput()) == pytest.approx(result["lesions"][0]["volume_ml"], rel=0.03)


@pytest.mark.parametrize("orientation, spacing", [("LAI", (0.8, 0.8, 2.5)), ("RPS", (1.0, 1.0, 1.0))])
def test_sphere_surface_volume_matches_voxel_volume(orientation, spacing):
    ph = make_phantom(spacing=spacing, orientation=orientation, vessels=[], noise_hu=0,
                      lesions=[Lesion((-90.0, 10.0, 20.0), (30.0, 30.0, 30.0))],
                      fov_mm=(80.0, 80.0, 60.0), center_mm=(-90.0, 10.0, 20.0))
    lab = sitk.GetArrayViewFromImage(ph.labels)
    grid = Grid.of(ph.labels)
    poly = surface(lab == 3, grid)
    voxel_ml = (lab == 3).sum() * grid.voxel_ml
    assert enclosed_volume_ml(poly) == pytest.approx(voxel_ml, rel=0.03)


def test_report_has_stage_table_and_pictures(case):
    _, result, paths, _ = case
    html = open(paths["report"], encoding="utf-8").read()
    assert "Stage 4" in html and "T4 N0 M0" in html and "IIIB" in html
    assert html.count("data:image/png;base64,") == len(result["lesions"]) + 1
    assert "microvascular" not in html or "T1b" in html
    for les in result["lesions"]:
        assert f"{les['longest_axial_mm']:.1f}" in html


def test_cli_analyze(case, tmp_path, capsys):
    ph = case[0]
    sitk.WriteImage(ph.ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(ph.labels, str(tmp_path / "labels.nii.gz"))
    code = cli.main(["analyze", str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz"),
                     "--out", str(tmp_path / "out"), "--no-models", "--no-report", "--cyst-rule",
                     "off", "--major-vessel-mm", "20"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "stage" in printed and str(tmp_path / "out") in printed
    data = json.loads((tmp_path / "out" / "measurements.json").read_text())
    assert data["settings"]["cyst_rule"] == "off" and data["staging"]["paper"]["stage"] == 2
    assert not (tmp_path / "out" / "report.html").exists()


def test_bad_inputs_give_one_clear_error(case, tmp_path, capsys):
    ph = case[0]
    lab = sitk.GetArrayFromImage(ph.labels)
    bad = sitk.GetImageFromArray(np.where(lab == 3, 7, lab).astype(np.uint8))
    bad.CopyInformation(ph.labels)
    with pytest.raises(InputError, match="outside 0-3"):
        analyze_case(ph.ct, bad)
    shifted = sitk.Image(ph.labels)
    shifted.SetOrigin(tuple(np.add(ph.labels.GetOrigin(), (5.0, 0, 0))))
    with pytest.raises(InputError, match="grid"):
        analyze_case(ph.ct, shifted)
    empty = sitk.Image(ph.labels.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ph.labels)
    with pytest.raises(InputError, match="no liver"):
        analyze_case(ph.ct, empty)
    with pytest.raises(InputError, match="cyst rule"):
        analyze_case(ph.ct, ph.labels, cyst_rule="maybe")
    sitk.WriteImage(ph.ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(shifted, str(tmp_path / "labels.nii.gz"))
    code = cli.main(["analyze", str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "grid" in err[0] and "Fix:" in err[0]
    assert not (tmp_path / "out" / "measurements.json").exists()
