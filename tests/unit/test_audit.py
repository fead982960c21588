import json

import cv2
import numpy as np
import pandas as pd
import pytest

from sonoflow.audit import (AuditSettings, audit_frames, audit_summary, detect_marks, inpaint_marks, marked_frames,
                            marks_per_class, planted_stills)
from sonoflow.demo import make_demo
from sonoflow.frames import IngestSettings, ingest_item
from sonoflow.report import audit_page
from sonoflow.split import SplitSettings, make_splits, usable_frames

LABELS = ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]
# Each still gets one of these in turn (two in five nothing), planted at the demo's own resolution.
PLANTS = [(), ("caliper",), ("text",), (), ("doppler",)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Demo stills with planted calipers, text and Doppler boxes, ingested like the workflow does
    (at the demo's own 256 px width): frames, frame table, planted marks in ingest geometry."""
    folder = tmp_path_factory.mktemp("audit")
    sheet = make_demo(folder, n_patients_per_class=4, images_per_patient=2, clips_per_patient=0, seed=5)
    return planted_stills(sheet, folder, [PLANTS[k % 5] for k in range(len(sheet))], size=256, seed=5)


def overlaps(boxes, mask):
    return any(mask[y0:y1, x0:x1].any() for kind, y0, y1, x0, x1 in boxes if kind != "colour")


def test_planted_calipers_text_and_doppler_boxes_are_detected(planted):
    frames, table, truth = planted
    marks, masks = audit_frames(frames, table, AuditSettings())
    found = {"caliper": 0, "text": 0, "doppler": 0}
    planted_count = dict.fromkeys(found, 0)
    false_boxes = 0
    for boxes, here in zip(marks["boxes"].map(json.loads), truth):
        for kind, mask in here:
            planted_count[kind] += 1
            found[kind] += any(b[0] == "colour" for b in boxes) if kind == "doppler" else overlaps(boxes, mask)
        for box in boxes:
            if box[0] == "colour":
                false_boxes += not any(kind == "doppler" for kind, _ in here)
            else:
                false_boxes += not overlaps([box], np.any([m for k, m in here if k != "doppler"] or
                                                          [np.zeros(frames.shape[1:], bool)], axis=0))
    recall = {kind: found[kind] / planted_count[kind] for kind in found}
    detected = int(marks["count"].sum())
    print(f"planted {planted_count}, recall {recall}, {false_boxes} of {detected} boxes on no planted mark")
    assert recall["caliper"] >= 0.8 and recall["text"] >= 0.75 and recall["doppler"] == 1.0, recall
    assert false_boxes <= 0.2 * detected
    clean = [i for i, here in enumerate(truth) if not here]
    assert marks.loc[clean, "marked"].sum() <= 1, "frames without marks are (almost) never flagged"
    assert masks.shape == frames.shape and set(np.unique(masks)) <= {0, 1}
    assert (masks[clean].sum() == 0) or marks.loc[clean, "marked"].any()


def test_inpaint_removes_the_marks_and_leaves_the_rest(planted):
    frames, table, truth = planted
    marks, masks = audit_frames(frames, table, AuditSettings())
    cleaned = inpaint_marks(frames, masks)
    assert np.array_equal(cleaned[masks == 0], frames[masks == 0]), "only mark pixels change"
    thin = marks["count"] > marks["n_colour"]
    assert thin.sum() >= 8
    after, _ = audit_frames(cleaned, table, AuditSettings())
    before = int((marks["count"] - marks["n_colour"]).sum())
    # A mark found again after inpainting: a box on the pixels that were inpainted.
    remaining = sum(overlaps(boxes, mask.astype(bool)) for boxes, mask in zip(after["boxes"].map(json.loads), masks))
    print(f"thin marks before inpainting {before}, frames with a mark found again where it was inpainted {remaining}")
    assert remaining <= 0.1 * before
    # Inpainted caliper pixels look like their surroundings, not like a saturated stroke.
    assert cleaned[masks == 1].mean() < frames[masks == 1].mean() - 40


def test_drop_leaves_marked_frames_out_of_the_split_and_report_changes_nothing(planted):
    frames, table, _ = planted
    marks, _ = audit_frames(frames, table, AuditSettings())
    marks.insert(0, "shard", "00")
    dropped = marked_frames(marks)
    assert len(dropped) == int(marks["marked"].sum()) > 0
    table = table.assign(frame_index=0, time_s=0.0, has_mask=False)
    settings = SplitSettings(test_fraction=0.0, folds=2, seed=1)
    everything = make_splits(table, LABELS, settings)
    without = make_splits(table, LABELS, settings, excluded_frames=dropped)
    assert len(usable_frames(table, everything)) == len(table)
    kept = usable_frames(table, without)
    assert len(kept) == len(table) - len(dropped)
    assert not (kept["shard"] + ":" + kept["row"].astype(str)).isin(dropped).any()


def test_colour_comes_from_ingest_before_grayscale(tmp_path):
    image = np.full((120, 160), 90, np.uint8)
    colour = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    colour[40:60, 50:90] = (30, 30, 220)
    cv2.imwrite(str(tmp_path / "doppler.png"), colour)
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
    settings = IngestSettings(size=64, crop=False)
    assert ingest_item(tmp_path / "doppler.png", settings).colour[0] == pytest.approx(20 * 40 / (120 * 160), rel=0.01)
    assert ingest_item(tmp_path / "gray.png", settings).colour == [0.0]


def test_speckle_alone_is_no_mark():
    rng = np.random.default_rng(0)
    frame = np.clip(rng.rayleigh(60, (128, 128)), 0, 230).astype(np.uint8)
    boxes, mask = detect_marks(frame)
    assert [b for b in boxes if b[0] in ("cross", "text")] == [] and mask.sum() < 0.01 * mask.size


def test_summary_counts_marks_per_class_and_each_policy(planted):
    frames, table, _ = planted
    marks, _ = audit_frames(frames, table, AuditSettings())
    marks.insert(0, "shard", "00")
    shortcuts = pd.DataFrame([{"group": "size", "frames": 32, "patients": 16, "features": 4, "auc": 0.9, "ci_low": 0.8,
                               "ci_high": 0.97, "top_features": "aspect 0.90", "warning": "the label can be guessed"}])
    summary = audit_summary(marks, shortcuts, marks_policy="drop")
    per_class = marks_per_class(marks)
    assert per_class["marked"].sum() == marks["marked"].sum() and set(per_class["label"]) == set(LABELS)
    assert any("audit.marks: drop (configured)" in f for f in summary["finding"])
    page = audit_page(summary)
    assert "shortcut probe" in page and "class='warn'" in page
