"""The figures people read (sonoflow.figures): colour convention, overlays, pairs, curves."""

import numpy as np
import pandas as pd
import pytest

from sonoflow import figures
from sonoflow.figures import (GROUND_TRUTH, UNET, bgr, cam_overlay_figure, count_labels, curve_figure, marks_figure,
                              pairs_figure, prediction_overlay_figure, segmentation_overlay_figure, training_figure)
from sonoflow.metrics import Question

cv2 = pytest.importorskip("cv2")


def disc(size=64, centre=(32, 32), radius=12):
    yy, xx = np.mgrid[:size, :size]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2).astype(np.uint8)


def speckle(n, size=64, seed=0):
    return np.random.default_rng(seed).integers(40, 120, (n, size, size), dtype=np.uint8)


def colour_pixels(path, colour, tolerance=40):
    image = cv2.imread(str(path)).astype(int)
    return int((np.abs(image - np.array(bgr(colour))).max(axis=2) < tolerance).sum())


def test_one_colour_convention_and_its_opencv_form():
    assert GROUND_TRUTH != UNET
    assert bgr("#102030") == (0x30, 0x20, 0x10)
    assert figures.OUTLINE_COLOURS == {"truth": GROUND_TRUTH, "unet": UNET}


def test_ingest_preview_uses_the_ground_truth_colour():
    from sonoflow.frames import preview_image

    preview = preview_image(speckle(1)[0], disc())
    outlined = preview[:, 64:].astype(int)
    assert (np.abs(outlined - np.array(bgr(GROUND_TRUTH))).max(axis=2) < 40).sum() > 30


def test_cam_overlay_names_item_and_patient_keeps_the_bmode_and_colours_outlines_by_source(tmp_path):
    n = 4
    frames = speckle(n)
    cams = np.zeros((n, 64, 64), np.float32)
    cams[:, 20:44, 20:44] = 1.0
    lesions = np.stack([disc()] * n)
    examples = pd.DataFrame({"patient_id": ["P01", "P02", "P03", "P04"], "item_id": ["P01_img1", "P02_clip1", "x", "y"],
                             "label": ["cyst", "cyst", "normal", "normal"], "predicted": ["cyst", "normal", "normal", "normal"],
                             "confidence": [0.9, 0.6, 0.8, 0.7], "kind": ["correct", "wrong", "correct", "random"]})
    path = tmp_path / "cam.png"
    cam_overlay_figure(path, frames, cams, lesions, ["truth", "unet", "truth", "truth"], examples, ["cyst", "normal"],
                       "run: gradcam")
    image = cv2.imread(str(path))
    assert image is not None and image.std() > 20
    assert colour_pixels(path, GROUND_TRUTH) > 50 and colour_pixels(path, UNET) > 20
    # Where the CAM is zero the B-mode is drawn unchanged: grey pixels (b == g == r) exist in the panels.
    grey = (np.abs(image[..., 0].astype(int) - image[..., 2]) < 3) & (image[..., 0] > 30) & (image[..., 0] < 130)
    assert grey.sum() > 2000


def test_segmentation_overlay_draws_truth_and_unet_in_their_colours(tmp_path):
    frames = speckle(2)
    truth = np.stack([disc(), disc(radius=8)])
    predicted = np.stack([disc(centre=(36, 36)), np.zeros((64, 64), np.uint8)])
    table = pd.DataFrame({"label": ["cyst", "cyst"], "patient_id": ["P1", "P2"], "item_id": ["a", "b"], "dice": [0.8, 0.0]})
    path = tmp_path / "seg.png"
    segmentation_overlay_figure(path, frames, truth, predicted, table)
    assert colour_pixels(path, GROUND_TRUTH) > 50 and colour_pixels(path, UNET) > 20


class Store:
    def __init__(self, frames):
        self.frames = frames

    def gather(self, rows):
        return self.frames[rows["row"].to_numpy()]


def test_pairs_figure_marks_pairs_with_different_labels(tmp_path):
    pairs = pd.DataFrame({"item_a": ["a", "c"], "patient_a": ["A", "C"], "label_a": ["cyst", "cyst"], "shard_a": ["00"] * 2,
                          "row_a": [0, 2], "item_b": ["b", "d"], "patient_b": ["B", "C"], "label_b": ["normal", "cyst"],
                          "shard_b": ["00"] * 2, "row_b": [1, 3], "correlation": [0.9, 0.95],
                          "crosses_patients": [True, False]})
    path = tmp_path / "pairs.png"
    pairs_figure(path, pairs, Store(speckle(4)))
    image = cv2.imread(str(path))
    shaded = (np.abs(image.astype(int) - np.array(bgr("#fde7ea"))).max(axis=2) < 4).sum()
    assert shaded > 1000, "the label conflict's row is shaded"
    same = pairs.assign(label_b="cyst")
    pairs_figure(path, same, Store(speckle(4)))
    assert (np.abs(cv2.imread(str(path)).astype(int) - np.array(bgr("#fde7ea"))).max(axis=2) < 4).sum() == 0
    pairs_figure(path, pairs.iloc[:0], Store(speckle(1)))
    assert cv2.imread(str(path)) is not None


def test_calibration_counts_one_per_bin_inside_the_axes():
    edges = np.linspace(0, 1, 11)
    which = np.array([9, 9, 9, 8, 7, 7, 0])
    labels = count_labels(edges, which)
    assert labels == [(pytest.approx(0.05), "1"), (pytest.approx(0.75), "2"), (pytest.approx(0.85), "1"),
                      (pytest.approx(0.95), "3")]
    assert all(0 < x < 1 for x, _ in labels)


def test_curves_put_patient_level_beside_image_level_one_row_per_class(tmp_path, monkeypatch):
    from test_metrics import predictions

    from sonoflow.metrics import aggregate

    labels = ("a", "b", "c")
    folds = [predictions(n_patients=12, labels=labels, seed=k) for k in range(2)]
    question = Question(labels)
    levels = {"image": (folds, None, question), "patient": ([aggregate(t, labels) for t in folds], None, question)}
    titles = []
    original = figures._curve_panel

    def spy(axis, kind, index, folds, ensemble, question, title):
        titles.append(title)
        return original(axis, kind, index, folds, ensemble, question, title)

    monkeypatch.setattr(figures, "_curve_panel", spy)
    curve_figure(tmp_path / "roc.png", "roc", levels, "run: ROC")
    assert titles == [f"{label} · {level} level" for label in labels for level in ("image", "patient")]
    assert cv2.imread(str(tmp_path / "roc.png")).shape[1] >= 900  # two panels wide, legends at 8 pt


def test_training_legend_sits_below_the_curves(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1, 0.6, 0.4], "val_loss": [0.9, 0.7, 0.8],
                            "val_auc": [0.6, 0.8, 0.7], "best": [False, True, False]})
    path = tmp_path / "training.png"
    training_figure(path, [history, history], "run: training")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 400


def test_marks_figure_boxes_each_kind_in_its_colour(tmp_path):
    import json

    marks = pd.DataFrame({"shard": "00", "row": [0, 1], "item_id": ["a", "b"], "label": ["cyst", "normal"],
                          "kinds": ["cross", ""], "count": [1, 0], "boxes": [json.dumps([["cross", 10, 40, 10, 40]]), "[]"]})
    path = tmp_path / "marks.png"
    marks_figure(path, marks, Store(speckle(2)))
    assert figures.MARK_COLOURS["cross"] == "red" and colour_pixels(path, "#ff0000") > 20
    marks_figure(tmp_path / "none.png", marks.assign(count=0), Store(speckle(2)))
    assert cv2.imread(str(tmp_path / "none.png")) is not None


def test_prediction_overlay_draws_one_panel_per_item(tmp_path):
    pytest.importorskip("pytorch_grad_cam")
    shown = pd.DataFrame({"patient_id": ["P1", "P2"], "item_id": ["a", "b"], "item_predicted": ["cyst", "normal"],
                          "item_probability": [0.9, 0.6], "item_call": ["positive", ""]})
    cams = np.zeros((2, 64, 64), np.float32)
    cams[:, 20:44, 20:44] = 1.0
    path = tmp_path / "predict.png"
    from sonoflow.predict import cam_blends

    prediction_overlay_figure(path, cam_blends(speckle(2), cams), shown, "run: gradcam of the predicted class")
    image = cv2.imread(str(path))
    assert image is not None and image.std() > 20 and image.shape[1] > image.shape[0]
