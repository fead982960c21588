"""The data plan: the fingerprint of a run's frames and split, and the time budget on epochs."""

import pandas as pd
import pytest

from sonoflow.plan import (CLASSIFIER_SHARE, MIN_EPOCHS, classifier_hours, describe_data, fingerprint, merge_plans,
                           plan_epochs, plan_geometric, planned_training)
from sonoflow.split import SplitSettings, make_splits


def frame_table(patients=30, frames_per_item=2):
    rows = []
    for index in range(patients):
        label = "benign" if index % 3 else "malignant"
        for frame in range(frames_per_item):
            rows.append({"shard": "00", "row": len(rows), "item_id": f"i{index}", "patient_id": f"p{index}",
                         "label": label, "frame_index": frame, "has_mask": index % 2 == 0,
                         "source_height": 400 + index, "source_width": 600})
    return pd.DataFrame(rows)


@pytest.fixture
def facts():
    frames = frame_table()
    splits = make_splits(frames, ["benign", "malignant"], SplitSettings(seed=1, test_fraction=0.2, folds=3))
    return fingerprint(frames, splits), frames, splits


def test_fingerprint_counts_what_the_split_uses(facts):
    facts, frames, splits = facts
    assert (facts["patients"], facts["items"], facts["frames"]) == (30, 30, 60)
    assert facts["frames_per_class"] == {"benign": 40, "malignant": 20}
    assert facts["patients_per_class"] == {"benign": 20, "malignant": 10}
    assert facts["masked_frames"] == 30 and facts["frames_per_item_max"] == 2
    assert facts["native_width_median"] == 600
    assert facts["test_frames"] == 2 * len(splits["test"])
    for fold, split in zip(facts["folds"], splits["folds"]):
        assert fold["train_frames"] == 2 * len(split["train"]) and fold["val_frames"] == 2 * len(split["val"])
    # Every non-test frame is validated once across the folds.
    assert sum(fold["val_frames"] for fold in facts["folds"]) == 60 - facts["test_frames"]
    described = describe_data(facts)
    assert described["data"] == "30 patients, 30 items, 60 frames (2 per item, median)"
    assert described["data per class"] == "benign 20 patients / 40 frames, malignant 10 patients / 20 frames"
    assert described["data native size"] == "600x414 px (median)"


def test_fingerprint_leaves_out_what_the_split_excluded():
    frames = frame_table()
    splits = make_splits(frames, ["benign", "malignant"], SplitSettings(seed=1, test_fraction=0.2, folds=3),
                         excluded_items=["i0", "i1"])
    assert fingerprint(frames, splits)["items"] == 28


def test_the_budget_cuts_planned_epochs_only_and_says_so(facts):
    facts = facts[0]
    per_epoch = classifier_hours(facts, runs=1, epochs=1, seconds_per_image=1.0)
    assert per_epoch == pytest.approx(sum(f["train_frames"] + f["val_frames"] / 3 for f in facts["folds"]) / 3600)
    # Within budget: kept, with the estimate.
    fits = plan_epochs(facts, epochs=15, planned=True, runs=1, seconds_per_image=1.0, max_hours=1.0)
    assert fits["value"] == 15 and not fits["gave_up"] and fits["estimated_hours"] == pytest.approx(15 * per_epoch, 1e-3)
    # Over budget: the most epochs that fit CLASSIFIER_SHARE of it.
    budget = 6 * per_epoch / CLASSIFIER_SHARE + 1e-9
    cut = plan_epochs(facts, epochs=15, planned=True, runs=1, seconds_per_image=1.0, max_hours=budget)
    assert cut["value"] == 6 and cut["gave_up"] == "9 of 15 epochs" and "cut from 15 to 6" in cut["why"]
    # Two runs take twice as long: fewer epochs each.
    assert plan_epochs(facts, epochs=15, planned=True, runs=2, seconds_per_image=1.0, max_hours=budget)["value"] == MIN_EPOCHS
    # Never below MIN_EPOCHS.
    assert plan_epochs(facts, epochs=15, planned=True, runs=1, seconds_per_image=100.0, max_hours=budget)["value"] == MIN_EPOCHS
    # A configured value is kept, even where a timing says it will not fit.
    kept = plan_epochs(facts, epochs=15, planned=False, runs=1, seconds_per_image=1.0, max_hours=budget)
    assert kept["value"] == 15 and not kept["gave_up"] and kept["why"] == "set in the config (not timed)"
    # No timing (a GPU) or no budget: nothing is cut.
    for timing, hours in ((None, budget), (1.0, 0)):
        assert plan_epochs(facts, epochs=15, planned=True, runs=1, seconds_per_image=timing, max_hours=hours)["value"] == 15


def test_training_jobs_read_the_cut_and_the_report_shows_it(facts):
    facts = facts[0]
    cut = plan_epochs(facts, epochs=15, planned=True, runs=1, seconds_per_image=100.0, max_hours=0.01)
    data_plan = {"fingerprint": facts, "plan": [cut]}
    assert planned_training(data_plan) == {"epochs": MIN_EPOCHS}
    config_plan = [{"key": "train.input_size", "value": 224, "planned": True, "why": "x"},
                   {"key": "train.epochs", "value": 15, "planned": True, "why": "x"}]
    merged = merge_plans(config_plan, data_plan)
    assert [entry["key"] for entry in merged] == ["data", "data per class", "data with lesion masks",
                                                  "data native size", "train.input_size", "train.epochs"]
    assert merged[-1]["value"] == MIN_EPOCHS and merged[-1]["gave_up"]
    assert merge_plans(config_plan, None) == config_plan
    from sonoflow.report import _plan_values

    shown = _plan_values(merged)
    assert shown["train.epochs"].startswith(f"{MIN_EPOCHS} (planned): cut from 15 to {MIN_EPOCHS} epochs")
    assert shown["train.input_size"] == "224 (planned)" and shown["data"].startswith("30 patients")


def test_the_timing_runs_the_real_loop():
    from sonoflow.train import TrainSettings, seconds_per_image

    settings = TrainSettings(model="resnet18", input_size=32, batch_size=4, epochs=20)
    seconds = seconds_per_image(settings, 2, frame_size=32, batches=2)
    assert 0 < seconds < 5


def test_geometric_augmentation_is_planned_off_for_clips_and_on_for_stills():
    """train.geometric: auto: most items clips (median frames per item above 1) -> no rotation,
    shift or zoom; still images (one frame each, or clips with a few stills among them) -> on."""
    labels = ["benign", "malignant"]
    settings = SplitSettings(seed=1, test_fraction=0.2, folds=3)
    for frames_per_item, expected in ((1, True), (2, False), (4, False)):
        frames = frame_table(frames_per_item=frames_per_item)
        record = plan_geometric(fingerprint(frames, make_splits(frames, labels, settings)))
        assert (record["key"], record["value"], record["planned"]) == ("train.geometric", expected, True)
        assert ("clips" in record["why"]) == (not expected) and f"{frames_per_item:g} frame" in record["why"]
        assert planned_training({"plan": [record]}) == {"geometric": expected}
    # 10 clips of 4 frames among 20 stills: the median item is a still.
    mixed = pd.concat([frame_table(patients=10, frames_per_item=4),
                       frame_table(patients=20, frames_per_item=1).assign(
                           item_id=lambda t: "s" + t["item_id"], patient_id=lambda t: "s" + t["patient_id"])])
    assert plan_geometric(fingerprint(mixed, make_splits(mixed, labels, settings)))["value"] is True
