import numpy as np
import pandas as pd
import pytest

from sonoflow.calibrate import calibrate_table, fit_temperature, log_probabilities, negative_log_likelihood, scaled
from sonoflow.evaluate import EvaluateSettings, evaluate_run
from sonoflow.metrics import class_indices, fold_ensemble
from sonoflow.predict import ensemble_prediction

LABELS = ["benign", "malignant", "normal"]


def overconfident(n=600, temperature=3.0, seed=0, prefix="P", patients=60, frames_per_item=2):
    """Frames of items (``frames_per_item`` each, one item per patient when n == patients x
    frames_per_item) whose true class is drawn from softmax(z) of the item's logits z, but whose
    written probabilities are softmax(z' * temperature) (z' = z + a little frame noise): a model
    over-confident by a known temperature."""
    rng = np.random.default_rng(seed)
    n_items = n // frames_per_item
    item_logits = rng.normal(0, 1.2, (n_items, len(LABELS)))
    truth = np.array([rng.choice(len(LABELS), p=p) for p in scaled(item_logits, 1.0)])
    item = np.arange(n) % n_items
    logits = item_logits[item] + rng.normal(0, 0.2, (n, len(LABELS)))
    probs = scaled(logits * temperature, 1.0)
    table = pd.DataFrame({"shard": "00", "row": np.arange(n), "patient_id": [f"{prefix}{i % patients:03d}" for i in item],
                          "item_id": [f"{prefix}{i:04d}" for i in item], "frame_index": np.arange(n) // n_items,
                          "label": [LABELS[truth[i]] for i in item]})
    for k, name in enumerate(LABELS):
        table[f"prob_{name}"] = probs[:, k]
    table["predicted"] = [LABELS[i] for i in probs.argmax(1)]
    return table


def test_fitted_temperature_recovers_a_known_overconfidence_and_lowers_the_nll():
    table = overconfident(n=4000, temperature=3.0)
    temperature = fit_temperature(table, LABELS)
    assert temperature == pytest.approx(3.0, rel=0.15)
    logits, target = log_probabilities(table, LABELS), class_indices(table, LABELS)
    assert negative_log_likelihood(logits, target, temperature) < negative_log_likelihood(logits, target, 1.0) - 0.05
    # A calibrated model's temperature stays near 1.
    assert fit_temperature(overconfident(n=4000, temperature=1.0, seed=1), LABELS) == pytest.approx(1.0, rel=0.15)


def test_calibration_keeps_every_frames_call_and_sums_to_one():
    table = overconfident()
    calibrated = calibrate_table(table, LABELS, 2.5)
    probs = calibrated[[f"prob_{k}" for k in LABELS]].to_numpy()
    assert np.allclose(probs.sum(1), 1) and (calibrated["predicted"] == table["predicted"]).all()
    assert probs.max(1).mean() < table[[f"prob_{k}" for k in LABELS]].to_numpy().max(1).mean()  # softer
    assert calibrate_table(table, LABELS, 1.0) is table
    with pytest.raises(ValueError, match="positive"):
        calibrate_table(table, LABELS, 0.0)


def folds_and_test(val_temperature=3.0, test_temperature=3.0, test_seed=50):
    everyone = overconfident(n=900, temperature=val_temperature, patients=450)
    number = everyone["patient_id"].str[1:].astype(int)
    val = [everyone[number % 3 == k].reset_index(drop=True) for k in range(3)]
    base = overconfident(n=300, temperature=test_temperature, seed=test_seed, prefix="T", patients=150)
    test = []
    for k in range(3):  # every fold scores the same test frames, each with its own noise
        noisy = scaled(log_probabilities(base, LABELS) + np.random.default_rng(k).normal(0, 0.3, (len(base), 3)), 1.0)
        test.append(base.assign(**{f"prob_{name}": noisy[:, i] for i, name in enumerate(LABELS)}))
    return val, test


def test_temperature_is_fitted_on_validation_predictions_only():
    settings = EvaluateSettings(n_boot=100)
    val, test = folds_and_test()
    fitted = evaluate_run(val, test, LABELS, settings).temperature
    assert fitted > 1.5  # the validation folds are over-confident
    # Other test predictions (even far less confident ones): the same temperature.
    _, other_test = folds_and_test(test_temperature=0.3, test_seed=99)
    assert evaluate_run(val, other_test, LABELS, settings).temperature == fitted
    # Other validation predictions: another temperature.
    other_val, _ = folds_and_test(val_temperature=1.0)
    assert evaluate_run(other_val, test, LABELS, settings).temperature != pytest.approx(fitted, rel=0.2)


def test_test_ensemble_is_calibrated_ece_drops_and_none_switches_it_off():
    val, test = folds_and_test()
    result = evaluate_run(val, test, LABELS, EvaluateSettings(n_boot=100))
    expected = fold_ensemble([calibrate_table(t, LABELS, result.temperature) for t in test], LABELS)
    assert np.allclose(result.parts["test"]["prob_benign"], expected["prob_benign"])
    table = result.calibration.set_index(["part", "level"])
    assert set(table.index) == {(part, level) for part in ("cv", "test") for level in ("image", "patient")}
    assert table.loc[("test", "image"), "ece_after"] < table.loc[("test", "image"), "ece_before"]
    assert table.loc[("cv", "image"), "nll_after"] < table.loc[("cv", "image"), "nll_before"]
    assert table.loc[("cv", "image"), "fitted_on_this_part"] and not table.loc[("test", "image"), "fitted_on_this_part"]
    off = evaluate_run(val, test, LABELS, EvaluateSettings(n_boot=100, calibration="none"))
    assert off.temperature == 1.0 and np.allclose(off.parts["test"]["prob_benign"],
                                                  fold_ensemble(test, LABELS)["prob_benign"])


def test_predict_applies_the_runs_temperature_like_evaluation():
    val, test = folds_and_test()
    settings = EvaluateSettings(n_boot=100, pooling=("topk", "mean"), topk=2)
    result = evaluate_run(val, test, LABELS, settings)
    prediction = ensemble_prediction(test, LABELS, result.thresholds, temperature=result.temperature,
                                     pooling="topk", k=2)
    headline = result.headline.set_index(["part", "level", "metric", "class"])
    from sonoflow.evaluate import at_level
    evaluated = at_level(result.parts["test"], LABELS, "patient", "topk", 2)
    assert np.allclose(prediction.patients[[f"prob_{k}" for k in LABELS]], evaluated[[f"prob_{k}" for k in LABELS]])
    assert headline.loc[("test", "patient", "accuracy", ""), "value"] == pytest.approx(
        (prediction.patients["predicted"] == prediction.patients["label"]).mean())


def test_separable_validation_drives_the_temperature_to_its_bound_and_says_so():
    from sonoflow.calibrate import at_bound

    table = overconfident(n=200, temperature=1.0)
    probs = np.eye(3)[table["label"].map(LABELS.index)] * 0.6 + 0.4 / 3  # every frame right, none sure
    table[[f"prob_{k}" for k in LABELS]] = probs
    temperature = fit_temperature(table, LABELS)
    assert temperature < 0.05 and at_bound(temperature) and not at_bound(1.0)
