import cv2
import numpy as np
import pandas as pd
import pytest

from sonoflow.demo import DEMO_CLASSES, fan_geometry, make_demo

SMALL = dict(n_patients_per_class=2, images_per_patient=1, clips_per_patient=1, frames_per_clip=4, height=96, width=128)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, make_demo(out, **SMALL)


def read(out, relative):
    return cv2.imread(str(out / relative), cv2.IMREAD_GRAYSCALE)


def test_sheet_shape_and_one_label_per_patient(demo):
    out, sheet = demo
    assert list(sheet.columns) == ["patient_id", "item_id", "path", "label", "mask", "split"]
    assert len(sheet) == 4 * 2 * 2 and sheet["patient_id"].nunique() == 8
    assert (sheet.groupby("patient_id")["label"].nunique() == 1).all()
    assert set(sheet["label"]) == set(DEMO_CLASSES)
    on_disk = pd.read_csv(out / "samples.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(on_disk, sheet, check_dtype=False)


def test_masks_binary_sized_and_lesion_only_where_expected(demo):
    out, sheet = demo
    for row in sheet[sheet["mask"] != ""].itertuples():
        image, mask = read(out, row.path), read(out, row.mask)
        assert image.shape == mask.shape == (96, 128)
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask.any()) == (row.label != "normal")


def test_lesion_classes_differ_as_described(demo):
    out, sheet = demo
    for row in sheet[(sheet["mask"] != "") & (sheet["label"] != "normal")].itertuples():
        image, mask = read(out, row.path).astype(float), read(out, row.mask) > 0
        inside_fan, _ = fan_geometry(*image.shape)
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~mask & inside_fan
        inside, around = image[mask].mean(), image[ring].mean()
        if row.label == "hyperechoic_mass":
            assert inside > around * 1.2, (row.item_id, inside, around)
        else:
            assert inside < around * 0.7, (row.item_id, inside, around)


def test_text_and_marks_outside_the_fan_only(demo):
    out, sheet = demo
    image = read(out, sheet.loc[sheet["mask"] != "", "path"].iloc[0])
    inside_fan, _ = fan_geometry(*image.shape)
    outside = image[~inside_fan]
    assert (outside > 150).sum() > 30, "burned-in text/ruler/logo expected outside the fan"
    assert np.median(outside) == 0


def test_clips_readable_with_all_frames_and_drifting(demo):
    out, sheet = demo
    clip = sheet[sheet["path"].str.endswith(".mp4")].iloc[0]
    cap = cv2.VideoCapture(str(out / clip.path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert len(frames) == 4
    assert not np.array_equal(frames[0], frames[-1])


def test_deterministic_and_stable_when_patients_are_added(tmp_path):
    first = make_demo(tmp_path / "a", **SMALL)
    again = make_demo(tmp_path / "b", **SMALL)
    more = make_demo(tmp_path / "c", **{**SMALL, "n_patients_per_class": 3})
    pd.testing.assert_frame_equal(first, again)
    for row in first[first["mask"] != ""].itertuples():
        a = (tmp_path / "a" / row.path).read_bytes()
        assert a == (tmp_path / "b" / row.path).read_bytes()
        assert a == (tmp_path / "c" / row.path).read_bytes(), "adding patients must not change existing ones"
    assert set(first["item_id"]) < set(more["item_id"])
    other_seed = make_demo(tmp_path / "d", **SMALL, seed=1)
    row = first.iloc[0]
    assert (tmp_path / "a" / row.path).read_bytes() != (tmp_path / "d" / other_seed.iloc[0].path).read_bytes()


def test_unknown_class_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot draw"):
        make_demo(tmp_path, classes=["cyst", "angiosarcoma"])
