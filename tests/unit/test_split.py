import json
import re

import numpy as np
import pandas as pd
import pytest

from sonoflow.io import FileFormatError
from sonoflow.split import (LeakageError, PatientPartition, SplitError, SplitSettings, check_enough_patients,
                            check_splits, frames_for_parts, held_out_patients, make_splits, partition_for_fold,
                            patient_table, read_splits, select_frames, split_report, write_splits)

LABELS = ["a", "b", "c"]


def frames_of(n_patients: int, frames_per_patient: int = 3, prefix: str = "P", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = LABELS[p % 3]
        for f in range(int(rng.integers(1, frames_per_patient + 1))):
            rows.append({"patient_id": f"{prefix}{p:04d}", "item_id": f"{prefix}{p:04d}_i{f}", "label": label, "split": ""})
    return pd.DataFrame(rows)


def test_deterministic_for_a_seed_and_seed_matters():
    frames = frames_of(60)
    settings = SplitSettings(seed=1, folds=3)
    assert make_splits(frames, LABELS, settings) == make_splits(frames, LABELS, settings)
    assert make_splits(frames, LABELS, settings)["test"] != make_splits(frames, LABELS, SplitSettings(seed=2, folds=3))["test"]


@pytest.mark.parametrize("seed", range(30))
def test_adding_patients_never_moves_existing_ones_across_the_test_boundary(seed):
    old = frames_of(60, seed=seed)
    new = pd.concat([old, frames_of(20, prefix="N", seed=seed + 100)], ignore_index=True)
    settings = SplitSettings(seed=seed, folds=2, test_fraction=0.25)
    old_test = set(held_out_patients(patient_table(old), settings))
    new_test = set(held_out_patients(patient_table(new), settings))
    assert {p for p in new_test if p.startswith("P")} == old_test


def test_test_fraction_is_respected_on_many_patients():
    splits = make_splits(frames_of(1500), LABELS, SplitSettings(seed=0, test_fraction=0.2, folds=5))
    assert abs(len(splits["test"]) / 1500 - 0.2) < 0.03


def test_folds_are_disjoint_cover_the_rest_and_are_stratified():
    frames = frames_of(90)
    splits = make_splits(frames, LABELS, SplitSettings(seed=4, folds=5))
    rest = set(frames["patient_id"]) - set(splits["test"])
    vals = [set(f["val"]) for f in splits["folds"]]
    assert set().union(*vals) == rest and sum(map(len, vals)) == len(rest)
    labels = patient_table(frames)["label"]
    for fold in splits["folds"]:
        assert not set(fold["train"]) & set(fold["val"])
        assert not (set(fold["train"]) | set(fold["val"])) & set(splits["test"])
        assert set(labels[fold["val"]]) == set(LABELS)


def test_fixed_split_column_is_honoured_and_conflicts_rejected():
    frames = frames_of(30)
    fixed = {"P0000", "P0001", "P0002"}
    frames.loc[frames["patient_id"].isin(fixed), "split"] = "test"
    splits = make_splits(frames, LABELS, SplitSettings(folds=3))
    assert set(splits["test"]) == fixed
    first = frames.index[frames["patient_id"] == "P0003"]
    if len(first) > 1:
        frames.loc[first[0], "split"] = "test"
        frames.loc[first[1], "split"] = "train"
    else:
        frames = pd.concat([frames, frames.loc[first].assign(split="train", item_id="extra")], ignore_index=True)
        frames.loc[first[0], "split"] = "test"
    with pytest.raises(SplitError, match="P0003"):
        make_splits(frames, LABELS, SplitSettings(folds=3))


def test_train_in_sheet_keeps_a_patient_out_of_test():
    frames = frames_of(300).assign(split="train")
    frames.loc[frames["patient_id"].isin(["P0000", "P0001", "P0002"]), "split"] = ""
    settings = SplitSettings(test_fraction=0.9, folds=2)
    assert set(held_out_patients(patient_table(frames), settings)) <= {"P0000", "P0001", "P0002"}


def test_single_split_with_val_fraction_gives_7_1_2():
    frames = frames_of(600)
    splits = make_splits(frames, LABELS, SplitSettings(seed=0, test_fraction=0.2, folds=1, val_fraction=0.125))
    (fold,) = splits["folds"]
    n = {"train": len(fold["train"]), "val": len(fold["val"]), "test": len(splits["test"])}
    assert abs(n["train"] / 600 - 0.7) < 0.04 and abs(n["val"] / 600 - 0.1) < 0.03 and abs(n["test"] / 600 - 0.2) < 0.04


def test_single_split_on_a_small_sheet_validates_every_class():
    # 12 patients, 3 classes: 12.5% rounds to 2 validation patients, fewer than the classes.
    splits = make_splits(frames_of(12), LABELS, SplitSettings(seed=0, test_fraction=0, folds=1, val_fraction=0.125))
    (fold,) = splits["folds"]
    labels = patient_table(frames_of(12))["label"]
    assert set(labels[fold["val"]]) == set(LABELS) and set(labels[fold["train"]]) == set(LABELS)
    # Where 12.5% is enough, the split is the one a plain fraction gives (earlier runs keep theirs).
    large = make_splits(frames_of(600), LABELS, SplitSettings(seed=0, test_fraction=0.2, folds=1, val_fraction=0.125))
    assert len(large["folds"][0]["val"]) == -(-len(set(frames_of(600)["patient_id"]) - set(large["test"])) // 8)


def test_no_test_set_when_fraction_is_zero():
    assert make_splits(frames_of(30), LABELS, SplitSettings(test_fraction=0, folds=3))["test"] == []


def test_too_few_patients_names_the_class():
    frames = frames_of(30)
    frames = frames[~frames["patient_id"].isin([f"P{p:04d}" for p in range(1, 30, 3)][:8])]  # class 'b' nearly gone
    with pytest.raises(SplitError, match="class 'b' has 2 patients"):
        check_enough_patients(frames, LABELS, SplitSettings(test_fraction=0, folds=5))


def test_partition_refuses_overlap_and_names_the_patient():
    with pytest.raises(LeakageError, match="P7.*train and test"):
        PatientPartition(train=["P1", "P7"], val=["P2"], test=["P7"])
    with pytest.raises(LeakageError, match="P2"):
        frames_for_parts(frames_of(3), train=["P2"], val=["P2"])


def test_select_frames_returns_only_that_part_and_refuses_unknown_patients():
    frames = frames_of(60)
    splits = make_splits(frames, LABELS, SplitSettings(seed=5, folds=3))
    partition = partition_for_fold(splits, 1)
    for part in ("train", "val", "test"):
        chosen = select_frames(frames, partition, part)
        assert set(chosen["patient_id"]) == set(partition.part(part))
        assert chosen.index.isin(frames.index).all()
    extra = pd.concat([frames, pd.DataFrame([{"patient_id": "NEW", "item_id": "x", "label": "a", "split": ""}])])
    with pytest.raises(LeakageError, match="NEW"):
        select_frames(extra, partition, "train")


def test_json_round_trip_and_tampering_is_caught(tmp_path):
    frames = frames_of(60)
    made = make_splits(frames, LABELS, SplitSettings(seed=6, folds=3), excluded_items=["P0001_i0"])
    write_splits(tmp_path / "splits.json", made)
    splits = read_splits(tmp_path / "splits.json")
    assert splits == json.loads(json.dumps(made))
    check_splits(splits, patient_table(frames)["label"].to_dict())
    tampered = json.loads(json.dumps(splits))
    tampered["folds"][0]["train"].append(tampered["folds"][0]["val"][0])
    with pytest.raises(LeakageError):
        check_splits(tampered)
    tampered = json.loads(json.dumps(splits))
    tampered["folds"][1]["val"].append(tampered["test"][0])
    with pytest.raises(LeakageError):
        check_splits(tampered)


def test_write_splits_refuses_leaky_or_malformed_splits(tmp_path):
    splits = make_splits(frames_of(45), LABELS, SplitSettings(seed=6, folds=3))
    leaky = json.loads(json.dumps(splits))
    leaky["folds"][0]["train"].append(leaky["test"][0])
    with pytest.raises(LeakageError):
        write_splits(tmp_path / "splits.json", leaky)
    with pytest.raises(ValueError, match="no 'folds'"):
        write_splits(tmp_path / "splits.json", {"test": []})
    assert not (tmp_path / "splits.json").exists()


@pytest.mark.parametrize("content, problem", [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON list"),
    ('{"test": []}', "no 'folds'"),
    ('{"folds": [{"fold": 0, "train": [], "val": []}]}', "no 'test'"),
    ('{"test": "P1", "folds": [{"fold": 0, "train": [], "val": []}]}', "'test' is not a list"),
    ('{"test": [], "folds": []}', "'folds' is not a non-empty list"),
    ('{"test": [], "folds": [{"fold": 0, "train": []}]}', "folds\\[0\\] has no 'val'"),
    ('{"test": [], "folds": [{"fold": "0", "train": [], "val": []}]}', "not a whole number"),
    ('{"test": [], "folds": [{"fold": 0, "train": [], "val": "P1"}]}', "'val'\\] is not a list"),
    ('{"test": [], "folds": [{"fold": 0, "train": [], "val": []}], "groups": []}', "'groups' is not an object"),
    ('{"test": [], "folds": [{"fold": 0, "train": [], "val": []}], "excluded_items": "x"}', "'excluded_items' is not"),
])
def test_read_splits_names_the_file_that_is_not_a_splits_file(tmp_path, content, problem):
    path = tmp_path / "thresholds.json"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=rf"{re.escape(str(path))} is not a splits file.*{problem}"):
        read_splits(path)


def test_split_report_counts_every_frame_once_per_fold():
    frames = frames_of(45)
    splits = make_splits(frames, LABELS, SplitSettings(seed=7, folds=3))
    report = split_report(frames, splits)
    for fold in ("0", "1", "2"):
        in_fold = report[(report["fold"] == fold) | (report["part"] == "test")]
        assert in_fold["frames"].sum() == len(frames)


def several_label_frames(n_patients=36, seed=0):
    """Patients with two items of different labels (a lesion and normal tissue) for two thirds,
    one label for the rest; 2-3 frames per item."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        labels = [LABELS[p % 3], LABELS[(p + 1) % 3]] if p % 3 else [LABELS[p % 3]]
        for i, label in enumerate(labels):
            for f in range(int(rng.integers(2, 4))):
                rows.append({"patient_id": f"P{p:04d}", "item_id": f"P{p:04d}_i{i}", "frame_index": f, "label": label,
                             "split": ""})
    return pd.DataFrame(rows)


def test_patients_with_several_labels_are_split_by_patient_on_their_label_sets():
    frames = several_label_frames()
    patients = patient_table(frames)
    assert patients.loc["P0001", "label"] == "b+c" and patients.loc["P0000", "label"] == "a"
    assert patients.loc["P0001", "labels"] == frozenset(frames.loc[frames["patient_id"] == "P0001", "label"])
    splits = make_splits(frames, LABELS, SplitSettings(seed=4, folds=3, test_fraction=0.2))
    test = set(splits["test"])
    strata = patients["label"]
    for fold in splits["folds"]:
        train, val = set(fold["train"]), set(fold["val"])
        assert not (train & val) and not (train & test) and not (val & test)  # grouped by patient, always
        # every label-set stratum with enough patients reaches every validation fold
        for stratum, members in strata.drop(index=list(test)).groupby(strata).groups.items():
            if len(members) >= 3:
                assert val & set(members), (stratum, fold["fold"])
    validated = sorted(pid for fold in splits["folds"] for pid in fold["val"])
    assert validated == sorted(set(patients.index) - test)


def test_unit_auto_is_item_when_a_patient_has_several_labels_and_patient_refuses_them():
    from sonoflow.split import resolve_unit

    assert resolve_unit(frames_of(12))[0] == "patient"
    unit, why = resolve_unit(several_label_frames())
    assert unit == "item" and "24 of 36 patients" in why and "grouped by patient" in why
    assert resolve_unit(several_label_frames(), "item")[0] == "item"
    with pytest.raises(SplitError, match="P0001"):
        resolve_unit(several_label_frames(), "patient")


def test_several_label_patients_are_scored_per_item():
    from sonoflow.evaluate import EvaluateSettings, evaluate_run

    frames = several_label_frames(n_patients=48)
    splits = make_splits(frames, LABELS, SplitSettings(seed=3, folds=3, test_fraction=0.25))
    rng = np.random.default_rng(0)

    def predicted(table):
        logits = rng.normal(0, 1, (len(table), 3)) + 1.5 * np.eye(3)[table["label"].map(LABELS.index)]
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return table.assign(shard="00", row=np.arange(len(table)),
                            **{f"prob_{name}": probs[:, k] for k, name in enumerate(LABELS)})

    val = [predicted(frames[frames["patient_id"].isin(fold["val"])]) for fold in splits["folds"]]
    test_frames = frames[frames["patient_id"].isin(splits["test"])]
    test = [predicted(test_frames) for _ in splits["folds"]]
    result = evaluate_run(val, test, LABELS, EvaluateSettings(n_boot=100))
    assert result.unit == "item" and set(result.headline["level"]) == {"image", "item"}
    row = result.headline.set_index(["part", "level", "metric", "class"]).loc[("test", "item", "accuracy", "")]
    assert row["cases"] == test_frames["item_id"].nunique() > row["patients"] == len(splits["test"])
    assert set(result.thresholds) == {"image", "item"}
    with pytest.raises(SplitError, match="several labels"):
        evaluate_run(val, test, LABELS, EvaluateSettings(n_boot=100, unit="patient"))


@pytest.mark.parametrize("seed", range(10))
def test_folds_balance_the_patients_label_sets(seed):
    """Stratified on label sets, each set's patients spread over the validation folds within one
    (stratifying on the frames' own labels instead leaves spreads of 2-4 on these sheets)."""
    frames = several_label_frames(60, seed=seed)
    splits = make_splits(frames, LABELS, SplitSettings(seed=seed, folds=3, test_fraction=0.0))
    for stratum, members in patient_table(frames).groupby("label").groups.items():
        counts = [len(set(members) & set(fold["val"])) for fold in splits["folds"]]
        assert max(counts) - min(counts) <= 1, (stratum, counts)
