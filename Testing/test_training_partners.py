"""Phase partners in training: a CT-only phase borrows its labelled partner's labels when both
series share a frame of reference, and a study's phases always leave a fold together."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from LiverLVTLib.core import io
from LiverLVTLib.core.manifest import load_manifest, partner_labelled_cases, with_partners
from LiverLVTLib.training.dataset import build_cache, load_cached
from LiverLVTLib.training.partners import transfer_partner_labels


def _shifted(image, mm):
    """The same voxels placed ``mm`` further along x (the patient moved on the table)."""
    moved = sitk.Image(image)
    origin = list(image.GetOrigin())
    origin[0] += mm
    moved.SetOrigin(origin)
    return moved


def test_with_partners_keeps_both_phases_of_a_study_together():
    cases = [{"id": "a-ap"}, {"id": "a-eqp", "pair_of": "a-ap"}, {"id": "b"}]
    assert with_partners(cases, ["a-ap"]) == {"a-ap", "a-eqp"}
    assert with_partners(cases, ["a-eqp"]) == {"a-ap", "a-eqp"}
    assert with_partners(cases, ["b"]) == {"b"}


def test_only_ct_only_phases_with_a_labelled_partner_borrow_labels():
    manifest = {"cases": [
        {"id": "a-ap", "ct": "a.nii.gz", "labels": "al.nii.gz", "annotated": ["liver", "tumor"]},
        {"id": "a-eqp", "ct": "ae.nii.gz", "pair_of": "a-ap"},
        {"id": "b-ap", "ct": "b.nii.gz"}, {"id": "b-eqp", "ct": "be.nii.gz", "pair_of": "b-ap"}]}
    borrowed = partner_labelled_cases(manifest)
    assert [c["id"] for c in borrowed] == ["a-eqp"]
    assert borrowed[0]["labels"] == "al.nii.gz" and borrowed[0]["labels_from"] == "a-ap"
    assert borrowed[0]["annotated"] == ["liver", "tumor"] and borrowed[0]["ct_from"] == "a.nii.gz"


def test_partner_labels_follow_physical_space_and_refuse_a_moved_body():
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=2)
    # the other phase: a sub-volume of the same frame, on its own grid (origin 5 voxels in)
    other = sitk.RegionOfInterest(ph.ct, [70, 57, 50], [5, 5, 5])
    labels = transfer_partner_labels(other, ph.ct, ph.labels)
    expected = sitk.GetArrayFromImage(ph.labels)[5:55, 5:62, 5:75]
    assert np.array_equal(sitk.GetArrayFromImage(labels), expected)
    assert labels.GetOrigin() == other.GetOrigin()
    # the same series moved 45 mm sideways: the bodies no longer overlap well enough
    assert transfer_partner_labels(_shifted(other, 45.0), ph.ct, ph.labels) is None


def _pair_manifest(tmp_path, partner_shift_mm=0.0):
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=2)
    data = tmp_path / "data"
    data.mkdir()
    io.write_image(ph.ct, data / "ap.nii.gz")
    io.write_image(ph.labels, data / "ap-labels.nii.gz")
    io.write_image(_shifted(ph.ct, partner_shift_mm), data / "eqp.nii.gz")
    (data / "manifest.json").write_text(json.dumps({"cases": [
        {"id": "s-ap", "ct": "ap.nii.gz", "labels": "ap-labels.nii.gz", "annotated": ["liver", "tumor"],
         "phase": "arterial"},
        {"id": "s-eqp", "ct": "eqp.nii.gz", "phase": "equilibrium", "pair_of": "s-ap"}]}))
    return load_manifest(data / "manifest.json")


STAGE = {"name": "coarse", "spacing_mm": [3.0, 3.0, 3.0]}


def test_borrowed_phase_is_cached_and_loaded_only_on_request(tmp_path):
    manifest = _pair_manifest(tmp_path)
    cache = build_cache(manifest, tmp_path / "cache", [STAGE], synth=False, partners=True, log=lambda m: None)
    assert load_cached(cache / "coarse") and [c["id"] for c in load_cached(cache / "coarse")] == ["s-ap"]
    both = load_cached(cache / "coarse", partners=True)
    assert [c["id"] for c in both] == ["s-ap", "s-eqp"]
    assert str(both[1]["labels_from"]) == "s-ap"
    assert np.array_equal(both[0]["labels"], both[1]["labels"])  # one frame, one grid here
    assert both[1]["annotated"].tolist() == [1, 0, 1]
    # a fold that leaves the labelled phase out leaves the borrowed one out with it
    gone = with_partners(manifest["cases"], ["s-ap"])
    assert load_cached(cache / "coarse", exclude=gone, partners=True) == []


@pytest.mark.parametrize("partners", [False, True])
def test_a_moved_partner_is_not_cached(tmp_path, partners):
    manifest = _pair_manifest(tmp_path, partner_shift_mm=45.0)
    said = []
    cache = build_cache(manifest, tmp_path / "cache", [STAGE], synth=False, partners=partners, log=said.append)
    assert not (cache / "coarse" / "s-eqp.npz").exists()
    assert any("s-eqp" in m and "registration" in m for m in said) == partners


def test_borrowed_phase_can_be_supervised_on_the_liver_only(tmp_path):
    from LiverLVTLib.core.errors import InputError
    from LiverLVTLib.training.train import partner_setting

    manifest = _pair_manifest(tmp_path)
    cache = build_cache(manifest, tmp_path / "cache", [STAGE], synth=False, partners=True, log=lambda m: None)
    real, borrowed = load_cached(cache / "coarse", partners=True, partner_classes=["liver"])
    assert borrowed["annotated"].tolist() == [1, 0, 0]  # its tumor label gets no gradient
    assert real["annotated"].tolist() == [1, 0, 1]  # the labelled phase keeps its classes
    assert partner_setting({"phase_partner_labels": ["liver"]}) == (True, ["liver"])
    assert partner_setting({"phase_partner_labels": True}) == (True, None)
    assert partner_setting({}) == (False, None)
    with pytest.raises(InputError, match="phase_partner_labels"):
        partner_setting({"phase_partner_labels": ["lung"]})


def _breathing_pair(shift_mm=(0.0, 0.0, 9.0), contrast=0.8):
    """A phantom and its other phase: the same body with the liver's content moved ``shift_mm``
    (a breath), the CT's HU scaled by ``contrast`` (another contrast phase); returns
    (phantom, other-phase CT, the labels that truly fit it)."""
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=2)
    breath = sitk.TranslationTransform(3, shift_mm)
    other = sitk.Resample(ph.ct, ph.ct, breath, sitk.sitkLinear, -1000.0) * contrast
    truth = sitk.Resample(ph.labels, ph.ct, breath, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return ph, sitk.Cast(other, sitk.sitkFloat32), truth


def _dice(a, b, value):
    a, b = sitk.GetArrayFromImage(a) == value, sitk.GetArrayFromImage(b) == value
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def test_registration_moves_the_partner_labels_onto_the_breathing_liver():
    from LiverLVTLib.core.labels import LIVER, TUMOR

    ph, other, truth = _breathing_pair()
    still = transfer_partner_labels(other, ph.ct, ph.labels)
    moved = transfer_partner_labels(other, ph.ct, ph.labels, register=True)
    assert moved.GetOrigin() == other.GetOrigin() and moved.GetSize() == other.GetSize()
    before, after = _dice(still, truth, TUMOR), _dice(moved, truth, TUMOR)
    assert before < 0.75 and after > 0.85 and after > before + 0.15, (before, after)
    assert _dice(moved, truth, LIVER) > _dice(still, truth, LIVER)


def test_a_moved_tumor_label_counts_only_where_the_tumor_shows():
    from LiverLVTLib.core.labels import TUMOR
    from LiverLVTLib.training.partners import MIN_VISIBLE_HU, tumor_contrasts, tumors_visible

    ph = _breathing_pair()[0]
    contrasts = tumor_contrasts(ph.ct, ph.labels)
    assert contrasts and all(c < -MIN_VISIBLE_HU for c in contrasts)  # the phantom's hypo tumors
    assert tumors_visible(contrasts) is True
    hu = sitk.GetArrayFromImage(ph.ct)
    iso = hu.copy()
    iso[sitk.GetArrayFromImage(ph.labels) == TUMOR] = np.median(hu[sitk.GetArrayFromImage(ph.labels) == 1])
    iso_ct = sitk.GetImageFromArray(iso)
    iso_ct.CopyInformation(ph.ct)
    assert tumors_visible(tumor_contrasts(iso_ct, ph.labels)) is False, "a tumor that reads like liver"
    no_tumor = sitk.Cast(sitk.Clamp(ph.labels, sitk.sitkUInt8, 0, 2), sitk.sitkUInt8)
    assert tumors_visible(tumor_contrasts(ph.ct, no_tumor)) is None


def test_registered_cache_teaches_a_tumor_only_when_visible_and_rebuilds_on_change(tmp_path):
    from LiverLVTLib.synthetic.phantom import make_small_phantom

    ph = make_small_phantom(seed=2)
    data = tmp_path / "data"
    data.mkdir()
    labels = sitk.GetArrayFromImage(ph.labels)
    hu = sitk.GetArrayFromImage(ph.ct)
    iso = hu.copy()
    iso[labels == 3] = np.median(hu[labels == 1])  # equilibrium phase without washout
    iso_ct = sitk.GetImageFromArray(iso)
    iso_ct.CopyInformation(ph.ct)
    io.write_image(ph.ct, data / "ap.nii.gz")
    io.write_image(ph.labels, data / "ap-labels.nii.gz")
    io.write_image(iso_ct, data / "eqp.nii.gz")
    (data / "manifest.json").write_text(json.dumps({"cases": [
        {"id": "s-ap", "ct": "ap.nii.gz", "labels": "ap-labels.nii.gz", "annotated": ["liver", "tumor"]},
        {"id": "s-eqp", "ct": "eqp.nii.gz", "pair_of": "s-ap"}]}))
    manifest = load_manifest(data / "manifest.json")
    said = []
    cache = build_cache(manifest, tmp_path / "cache", [STAGE], synth=False, partners=True, log=said.append,
                        register=True)
    borrowed = load_cached(cache / "coarse", partners=True)[1]
    assert str(borrowed["transfer"]) == "registered"
    assert borrowed["annotated"].tolist() == [1, 0, 0], "an invisible moved tumor is not taught"
    assert any("s-eqp" in m and "reads like liver" in m for m in said)
    said.clear()
    build_cache(manifest, cache, [STAGE], synth=False, partners=True, log=said.append)
    again = load_cached(cache / "coarse", partners=True)[1]
    assert str(again["transfer"]) == "identity" and again["annotated"].tolist() == [1, 0, 1]
    assert [m for m in said if "cached coarse/" in m] == ["cached coarse/s-eqp " + str(again["image"].shape)]


def test_cache_files_are_written_whole_and_temporaries_are_never_read(tmp_path):
    """Folds trained side by side build one cache: each file appears in one step, and a hidden
    half-written temporary of another writer is not read as a case."""
    manifest = _pair_manifest(tmp_path)
    cache = build_cache(manifest, tmp_path / "cache", [STAGE], synth=False, partners=True, log=lambda m: None)
    folder = cache / "coarse"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["s-ap.npz", "s-eqp.npz"]
    (folder / ".s-x.npz.abc.part.npz").write_bytes(b"PK\x03\x04 half")  # another writer at work
    assert [c["id"] for c in load_cached(folder, partners=True)] == ["s-ap", "s-eqp"]
