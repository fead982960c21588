import re

import numpy as np
import pandas as pd
import pytest

from sonoflow.evaluate import (EvaluateSettings, base_question, compare_runs, decision_record, evaluate_readers,
                               evaluate_run, for_people, headline_part, model_table, read_decision, read_headline,
                               read_headline_predictions, read_readers, write_decision)
from sonoflow.figures import comparison_figure, interval_figure, run_figures
from sonoflow.io import FileFormatError, save_csv, save_json
from sonoflow.split import LeakageError
from test_metrics import predictions

LABELS = ("benign", "malignant")
SETTINGS = EvaluateSettings(positive=("malignant",), n_boot=200)


def fold_tables(n_folds=3, seed=0, skill=1.5):
    """Validation tables of disjoint patients per fold, and the test patients' tables per fold."""
    everyone = predictions(n_patients=30 * n_folds, labels=LABELS, seed=seed, skill=skill)
    val = [everyone[everyone["patient_id"].str[1:].astype(int) % n_folds == k].reset_index(drop=True)
           for k in range(n_folds)]
    test = [predictions(n_patients=20, labels=LABELS, seed=100 + k, skill=skill).assign(
        patient_id=lambda t: "T" + t["patient_id"]) for k in range(n_folds)]
    for table in test:  # every fold predicts the same test frames (ids), with its own probabilities
        table["item_id"] = "T" + table["item_id"]
    return val, test


def test_evaluation_tables_levels_parts_and_confidence_intervals():
    val, test = fold_tables(skill=0.6)  # weak enough that the patient-level AUC is below 1
    result = evaluate_run(val, test, LABELS, SETTINGS)
    assert set(result.headline["part"]) == {"cv", "test"} and set(result.headline["level"]) == {"image", "patient"}
    row = result.headline.set_index(["part", "level", "metric", "class"]).loc[("test", "patient", "auc", "")]
    assert row["ci_low"] < row["value"] < row["ci_high"] and row["resamples"] == 200 and row["note"] == ""
    assert row["patients"] == 20 and row["cases"] == 20
    image = result.headline.set_index(["part", "level", "metric", "class"]).loc[("test", "image", "auc", "")]
    assert image["cases"] == 60
    assert result.headline["ci_method"].nunique() == 1, "one interval method for the whole table, AUCs included"
    folds = result.folds.set_index(["level", "fold"])
    assert folds.loc[("image", "mean"), "auc"] == pytest.approx(folds.loc[[("image", str(k)) for k in range(3)], "auc"].mean())
    assert set(result.thresholds) == {"image", "patient"} and all(0 < t < 1 for t in result.thresholds.values())


def test_tables_for_people_hold_three_decimals_and_no_zero_p_values(tmp_path):
    table = pd.DataFrame({"metric": ["auc", "auc"], "value": [0.9999999999999999, 0.123456], "delong_p": [0.00001, 0.04567],
                          "cases": [20, 7]})
    save_csv(tmp_path / "t.csv", for_people(table))
    text = (tmp_path / "t.csv").read_text()
    assert text.splitlines()[1:] == ["auc,1.0,<0.001,20", "auc,0.123,0.046,7"]
    val, test = fold_tables()
    save_csv(tmp_path / "headline.csv", for_people(evaluate_run(val, test, LABELS, SETTINGS).headline))
    numbers = pd.read_csv(tmp_path / "headline.csv").select_dtypes("number").to_numpy().ravel()
    numbers = numbers[np.isfinite(numbers)]
    assert len(numbers) and np.allclose(numbers, np.round(numbers, 3), rtol=0, atol=1e-12)


def test_threshold_comes_from_validation_only():
    val, test = fold_tables()
    shifted = [t.assign(prob_malignant=t["prob_malignant"] * 0.5, prob_benign=1 - t["prob_malignant"] * 0.5) for t in test]
    assert evaluate_run(val, test, LABELS, SETTINGS).thresholds == evaluate_run(val, shifted, LABELS, SETTINGS).thresholds


def test_decision_round_trip_and_defaults_for_older_files(tmp_path):
    result = evaluate_run(*fold_tables(), LABELS, SETTINGS)
    record = decision_record(result, SETTINGS, {"image": 0.05})
    write_decision(tmp_path / "thresholds.json", record)
    read = read_decision(tmp_path / "thresholds.json")
    assert read == {**record, "positive": ("malignant",)}
    assert read["thresholds"] == result.thresholds and read["unit"] == "patient"
    save_json(tmp_path / "old.json", {"thresholds": {"image": 0.4, "patient": 0.5}, "positive": ["malignant"]})
    assert read_decision(tmp_path / "old.json") == {
        "thresholds": {"image": 0.4, "patient": 0.5}, "positive": ("malignant",), "unit": "patient", "temperature": 1.0,
        "calibration": "none", "pooling": "mean", "topk": 3, "ece": {}}
    with pytest.raises(ValueError, match="no 'thresholds'"):
        write_decision(tmp_path / "bad.json", {"positive": ["malignant"]})
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize("content, problem", [
    ("{", "not JSON"),
    ('"text"', "JSON str"),
    ('{"test": [], "folds": []}', "no 'thresholds'"),
    ('{"thresholds": [0.5]}', "'thresholds' is not an object"),
    ('{"thresholds": {}, "positive": "malignant"}', "'positive' is not a list"),
])
def test_read_decision_names_the_file_that_is_not_a_thresholds_file(tmp_path, content, problem):
    path = tmp_path / "splits.json"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=rf"{re.escape(str(path))} is not a thresholds file.*{problem}"):
        read_decision(path)


def test_headline_part_is_test_when_every_run_has_test_predictions_else_the_pooled_folds(tmp_path):
    val, test = fold_tables()
    assert headline_part([test[0]]) == "test" and headline_part([test[0].iloc[:0]]) == "cv"
    assert headline_part([test[0], test[1].iloc[:0]]) == "cv"
    paths = {}
    for name, table in {"test": test[0], "empty": test[0].iloc[:0], "cv": val[0]}.items():
        save_csv(tmp_path / f"{name}.csv", table)
        paths[name] = tmp_path / f"{name}.csv"
    part, (table,) = read_headline_predictions([paths["test"]], [tmp_path / "never_read.csv"])
    assert part == "test" and table["patient_id"].tolist() == test[0]["patient_id"].tolist()
    part, tables = read_headline_predictions([paths["test"], paths["empty"]], [paths["cv"], paths["cv"]])
    assert part == "cv" and [len(t) for t in tables] == [len(val[0])] * 2


def test_overlapping_validation_and_test_patients_are_refused():
    val, test = fold_tables()
    leaky = [t.assign(patient_id=t["patient_id"].str.replace("TP", "P", regex=False)) for t in test]
    with pytest.raises(LeakageError):
        evaluate_run(val, leaky, LABELS, SETTINGS)
    with pytest.raises(LeakageError):
        evaluate_run([val[0], val[0]], test, LABELS, SETTINGS)


def test_no_test_set_scores_the_pooled_validation_folds_and_draws_every_figure(tmp_path):
    val, _ = fold_tables()
    empty = [t.iloc[:0] for t in val]
    multi = EvaluateSettings(n_boot=100)
    result = evaluate_run(val, empty, LABELS, multi)
    assert set(result.headline["part"]) == {"cv"} and result.thresholds == {"image": None, "patient": None}
    paths = {name: tmp_path / f"{name}.png" for name in ("roc", "pr", "confusion", "calibration", "training")}
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1, 0.5], "val_loss": [0.9, 0.7], "val_auc": [0.6, 0.8],
                            "best": [False, True]})
    errors = run_figures(paths, result, val, [history] * 3, LABELS, multi, "test run")
    assert set(errors) == {"image level", "patient level"}
    assert all(set(e) == {"before", "after"} and 0 <= e["before"] <= 1 and 0 <= e["after"] <= 1 for e in errors.values())
    assert all(path.stat().st_size > 5000 for path in paths.values())


def test_compare_runs_pairs_same_cases_with_delong_and_mcnemar():
    _, test = fold_tables(skill=2.0)
    good = test[0]
    weak = test[0].assign(prob_malignant=0.5 + 0.1 * (test[0]["prob_malignant"] - 0.5))
    weak["prob_benign"] = 1 - weak["prob_malignant"]
    table = compare_runs({"good": good, "weak": weak, "same": good}, LABELS, SETTINGS)
    rows = table.set_index(["run_a", "run_b"])
    assert rows.loc[("good", "same"), "delong_p"] == 1.0 and rows.loc[("good", "same"), "mcnemar_p"] == 1.0
    assert rows.loc[("good", "weak"), "auc_a"] == pytest.approx(rows.loc[("good", "weak"), "auc_b"])  # same order
    assert (table["level"] == "patient").all() and (table["cases"] == 20).all()
    with pytest.raises(ValueError, match="different cases"):
        compare_runs({"good": good, "other": test[1].assign(patient_id="X" + test[1]["patient_id"])}, LABELS, SETTINGS)
    multi = compare_runs({"good": good, "weak": weak}, LABELS, EvaluateSettings(n_boot=100))
    assert set(multi["target"]) == set(LABELS)


def test_model_table_one_row_per_run_with_intervals_and_delong_against_the_best(tmp_path):
    val, test = fold_tables(skill=1.2)
    weak_val = [t.assign(prob_malignant=0.5 + 0.1 * (t["prob_malignant"] - 0.5)) for t in val]
    weak_test = [t.assign(prob_malignant=0.5 + 0.1 * (t["prob_malignant"] - 0.5)) for t in test]
    for table in weak_val + weak_test:
        table["prob_malignant"] += np.random.default_rng(0).normal(0, 0.05, len(table))
        table["prob_benign"] = 1 - table["prob_malignant"]
    runs = {"good": evaluate_run(val, test, LABELS, SETTINGS), "weak": evaluate_run(weak_val, weak_test, LABELS, SETTINGS)}
    headlines = {}
    for name, run in runs.items():  # through the CSV, as the compare rule reads them
        save_csv(tmp_path / f"{name}.csv", run.headline)
        headlines[name] = read_headline(tmp_path / f"{name}.csv")
    pairwise = compare_runs({name: run.parts["test"] for name, run in runs.items()}, LABELS, SETTINGS)
    table = model_table(headlines, pairwise, "test").set_index(["level", "run"])
    assert len(table) == 4 and set(table.index.get_level_values("level")) == {"image", "patient"}
    for name, run in runs.items():
        auc = run.headline.set_index(["part", "level", "metric", "class"]).loc[("test", "patient", "auc", "")]
        row = table.loc[("patient", name)]
        assert row["auc"] == pytest.approx(auc["value"]) and row["auc_ci_low"] == pytest.approx(auc["ci_low"])
        assert row["sensitivity_ci_low"] <= row["sensitivity"] <= row["sensitivity_ci_high"]
    assert table.loc[("patient", "good"), "best_auc"] and np.isnan(table.loc[("patient", "good"), "delong_p_vs_best"])
    assert table.loc[("patient", "weak"), "delong_p_vs_best"] == pytest.approx(pairwise["delong_p"].iloc[0])
    # No test at image level, where frames of one patient are not independent.
    assert np.isnan(table.loc[("image", "weak"), "delong_p_vs_best"])
    comparison_figure(tmp_path / "roc.png", {n: r.parts["test"] for n, r in runs.items()}, base_question(LABELS, SETTINGS),
                      "roc")
    interval_figure(tmp_path / "auc.png", model_table(headlines, pairwise, "test"), "auc")
    assert (tmp_path / "roc.png").stat().st_size > 10_000 and (tmp_path / "auc.png").stat().st_size > 5_000


def test_readers_scored_like_the_model_and_compared_on_the_same_cases(tmp_path):
    _, test = fold_tables(skill=3.0)
    model = test[0]
    patients = model.groupby("patient_id")["label"].first()
    perfect = pd.DataFrame({"reader": "R1", "session": "without AI", "patient_id": patients.index, "label": patients.values})
    flipped = perfect.assign(reader="R2", label=np.where(np.arange(len(perfect)) % 4 == 0,
                                                          perfect["label"].map({"benign": "malignant", "malignant": "benign"}),
                                                          perfect["label"]))
    graded = flipped.assign(reader="R3", score=np.where(flipped["label"] == "malignant", 0.8, 0.2))
    path = tmp_path / "readers.csv"
    pd.concat([perfect, flipped, graded]).to_csv(path, index=False)
    metrics, comparison = evaluate_readers(read_readers(path), model, LABELS, SETTINGS, threshold=0.5)
    values = metrics.set_index(["reader", "metric"])["value"]
    assert values[("R1", "accuracy")] == 1.0 and values[("R1", "sensitivity")] == 1.0
    assert values[("R2", "accuracy")] == pytest.approx(0.75)
    rows = comparison.set_index("reader")
    assert rows.loc["R1", "accuracy_reader"] == 1.0 and rows.loc["R1", "cases"] == 20
    assert {"auc_model", "auc_reader", "delong_p"} <= set(comparison.columns)
    bad = perfect.assign(label="cancer")
    bad.to_csv(path, index=False)
    with pytest.raises(ValueError, match="cancer"):
        evaluate_readers(read_readers(path), model, LABELS, SETTINGS)


def test_topk_pooling_is_the_per_class_mean_of_the_most_confident_frames():
    from sonoflow.metrics import aggregate

    table = pd.DataFrame({"patient_id": ["A"] * 4 + ["B"] * 2, "label": ["benign"] * 4 + ["malignant"] * 2,
                          "prob_benign": [0.9, 0.2, 0.3, 0.1, 0.4, 0.6], "prob_malignant": [0.1, 0.8, 0.7, 0.9, 0.6, 0.4]})
    top2 = aggregate(table, LABELS, pooling="topk", k=2).set_index("patient_id")
    # A: benign top-2 (0.9, 0.3) -> 0.6; malignant top-2 (0.9, 0.8) -> 0.85; renormalised to sum 1.
    assert top2.loc["A", "prob_benign"] == pytest.approx(0.6 / 1.45)
    assert top2.loc["A", "prob_malignant"] == pytest.approx(0.85 / 1.45) and top2.loc["A", "frames"] == 4
    # k at least the frame count: the mean.
    mean = aggregate(table, LABELS).set_index("patient_id")
    assert top2.loc["B", "prob_benign"] == pytest.approx(mean.loc["B", "prob_benign"])
    with pytest.raises(ValueError, match="unknown pooling"):
        aggregate(table, LABELS, pooling="max")


@pytest.mark.parametrize("positive", [("malignant",), ()])
def test_pooling_methods_side_by_side_with_paired_tests_against_the_first(positive):
    val, test = fold_tables(skill=0.8)
    settings = EvaluateSettings(positive=positive, n_boot=100, pooling=("mean", "topk"), topk=1)
    result = evaluate_run(val, test, LABELS, settings)
    table = result.pooling.set_index(["part", "pooling"])
    assert set(table.index) == {(p, m) for p in ("cv", "test") for m in ("mean", "topk")}
    assert (table["level"] == "patient").all() and (table.loc[("test", "mean"), "cases"] == 20)
    row = table.loc[("test", "topk")]
    assert row["auc_ci_low"] <= row["auc"] <= row["auc_ci_high"] and row["k"] == 1
    p_columns = ["delong_p_vs_mean"] if positive else [f"delong_p_vs_mean_{label}" for label in LABELS]
    assert all(0 <= row[c] <= 1 for c in p_columns) and 0 <= row["mcnemar_p_vs_mean"] <= 1
    assert pd.isna(table.loc[("test", "mean"), p_columns[0]])
    # The headline is the first method's.
    headline = result.headline.set_index(["part", "level", "metric", "class"])
    overall = "" if positive else "macro"
    assert headline.loc[("test", "patient", "auc", overall), "value"] == pytest.approx(table.loc[("test", "mean"), "auc"])
    first_topk = evaluate_run(val, test, LABELS, EvaluateSettings(positive=positive, n_boot=100, pooling=("topk",), topk=1))
    assert first_topk.headline.set_index(["part", "level", "metric", "class"]).loc[
        ("test", "patient", "auc", overall), "value"] == pytest.approx(row["auc"])
