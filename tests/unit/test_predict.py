import numpy as np
import pytest

from sonoflow.metrics import aggregate, fold_ensemble
from sonoflow.predict import (called_class, ensemble_prediction, mark_seen_patients, patients_seen,
                              representative_frames)
from sonoflow.report import prediction_page
from test_metrics import predictions

LABELS = ["benign", "malignant"]


def folds(n=3):
    """The same frames scored by ``n`` folds with different probabilities."""
    tables = []
    for k in range(n):
        table = predictions(n_patients=6, frames=3, labels=LABELS, seed=k)
        table["item_id"] = table["patient_id"] + "_" + (table["frame_index"] % 2).astype(str)  # two items per patient
        tables.append(table)
    return tables


def test_new_cases_get_the_probabilities_evaluation_computes_for_test_cases():
    tables = folds()
    prediction = ensemble_prediction(tables, LABELS, {"image": 0.4, "patient": 0.6}, positive=["malignant"])
    evaluated = fold_ensemble(tables, LABELS)  # what evaluate writes as predictions_test.csv
    for level, table in (("item_id", prediction.items), ("patient_id", prediction.patients)):
        expected = aggregate(evaluated, LABELS, by=level)
        assert np.allclose(table[["prob_benign", "prob_malignant"]], expected[["prob_benign", "prob_malignant"]])
    items, patients = prediction.items, prediction.patients
    assert (items["threshold"] == 0.4).all() and (patients["threshold"] == 0.6).all()
    assert ((items["score"] >= 0.4) == (items["call"] == "positive")).all()
    assert ((patients["score"] >= 0.6) == (patients["call"] == "positive")).all()
    assert np.allclose(patients["score"], patients["prob_malignant"])


def test_multiclass_runs_call_the_most_probable_class_without_a_threshold():
    prediction = ensemble_prediction(folds(), LABELS, {"image": None, "patient": None})
    assert "call" not in prediction.items.columns
    best = prediction.items[["prob_benign", "prob_malignant"]].to_numpy().argmax(1)
    assert list(prediction.items["predicted"]) == [LABELS[i] for i in best]


def test_folds_that_scored_different_frames_are_refused():
    tables = folds()
    tables[1] = tables[1].iloc[1:]
    with pytest.raises(ValueError, match="different test frames"):
        ensemble_prediction(tables, LABELS, {})


def test_shown_frame_is_the_most_confident_frame_of_each_item_for_its_call():
    prediction = ensemble_prediction(folds(), LABELS, {"image": None, "patient": None})
    shown = representative_frames(prediction.frames, prediction.items, LABELS, limit=5)
    assert len(shown) == 5 and shown["item_id"].is_unique
    for row in shown.itertuples(index=False):
        of_item = prediction.frames[prediction.frames["item_id"] == row.item_id]
        assert row._asdict()[f"prob_{row.item_predicted}"] == of_item[f"prob_{row.item_predicted}"].max()
        assert LABELS[row.class_index] == row.item_predicted


def test_training_and_validation_patients_are_flagged_test_patients_are_not(tmp_path):
    splits = {"test": ["P002"], "folds": [{"train": ["P000"], "val": ["P001"]}, {"train": ["P001"], "val": ["P000"]}]}
    seen = patients_seen(splits)
    assert seen == {"P000", "P001"}
    patients = ensemble_prediction(folds(), LABELS, {}).patients
    flagged = mark_seen_patients(patients, seen).set_index("patient_id")["seen_in_training"]
    assert flagged["P000"] and flagged["P001"] and not flagged["P002"] and not flagged["P005"]
    patients_csv, items_csv = tmp_path / "patients.csv", tmp_path / "items.csv"
    mark_seen_patients(patients, seen).to_csv(patients_csv, index=False)
    patients.to_csv(items_csv, index=False)
    page = prediction_page("batch", "new.csv", {"efficientnet_lite0/full": {"patients": patients_csv, "items": items_csv}},
                           LABELS, ["malignant"])
    assert "2 of 6 patients were training or validation patients" in page and "Youden" in page


def test_a_binary_call_is_drawn_for_the_class_on_its_side_of_the_threshold():
    labels = ["benign", "cyst", "malignant"]
    item = {"prob_benign": 0.5, "prob_cyst": 0.1, "prob_malignant": 0.4, "predicted": "benign", "call": "positive"}
    assert called_class(item, labels, ["malignant"]) == "malignant"  # above a Youden cut of, say, 0.3
    assert called_class({**item, "call": "negative"}, labels, ["malignant"]) == "benign"
    assert called_class(item, labels) == "benign"  # multi-class: the argmax
    prediction = ensemble_prediction(folds(), LABELS, {"image": 0.05, "patient": 0.05}, positive=["malignant"])
    shown = representative_frames(prediction.frames, prediction.items, LABELS, limit=12, positive=["malignant"])
    assert (shown["item_predicted"] == "malignant").all() and (shown["item_call"] == "positive").all()


def test_report_says_the_probabilities_are_calibrated_and_how(tmp_path):
    patients = ensemble_prediction(folds(), LABELS, {}, temperature=1.7).patients
    patients.to_csv(tmp_path / "patients.csv", index=False)
    patients.to_csv(tmp_path / "items.csv", index=False)
    decision = {"calibration": "temperature", "temperature": 1.7, "pooling": "mean", "unit": "item"}
    page = prediction_page("batch", "new.csv", {"run": {"patients": tmp_path / "patients.csv",
                                                        "items": tmp_path / "items.csv", "decision": decision}},
                           LABELS, ["malignant"])
    assert "Probabilities are calibrated" in page and "temperature 1.700" in page and "validated per item" in page
    plain = ensemble_prediction(folds(), LABELS, {}).patients
    assert not np.allclose(patients["prob_malignant"], plain["prob_malignant"])  # the temperature was applied
