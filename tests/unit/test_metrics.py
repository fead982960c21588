import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, precision_score, recall_score,
                             roc_auc_score)

from sonoflow.metrics import (Question, aggregate, classification_metrics, delong, delong_ci, delong_test,
                              expected_calibration_error, fold_ensemble, mcnemar_test, patient_bootstrap,
                              bootstrap_counts, with_confidence, youden_threshold, TOO_SMALL, CI_METHOD)

LABELS = ("a", "b", "c")


def predictions(n_patients=40, frames=3, seed=0, labels=LABELS, skill=1.5):
    """Frames of patients with a label each; probabilities that lean towards the true class."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = labels[p % len(labels)]
        for f in range(frames):
            logits = rng.normal(0, 1, len(labels))
            logits[labels.index(label)] += skill
            probs = np.exp(logits) / np.exp(logits).sum()
            rows.append({"shard": "00", "row": len(rows), "patient_id": f"P{p:03d}", "item_id": f"P{p:03d}_i",
                         "frame_index": f, "label": label, **{f"prob_{k}": v for k, v in zip(labels, probs)}})
    return pd.DataFrame(rows)


def test_multiclass_metrics_match_sklearn():
    table = predictions()
    question = Question(LABELS)
    values = classification_metrics(table, question)
    y = table["label"].map({k: i for i, k in enumerate(LABELS)}).to_numpy()
    probs = table[[f"prob_{k}" for k in LABELS]].to_numpy()
    pred = probs.argmax(1)
    assert values[("accuracy", "")] == pytest.approx(accuracy_score(y, pred))
    assert values[("balanced_accuracy", "")] == pytest.approx(balanced_accuracy_score(y, pred))
    for k, label in enumerate(LABELS):
        assert values[("sensitivity", label)] == pytest.approx(recall_score(y == k, pred == k))
        assert values[("precision", label)] == pytest.approx(precision_score(y == k, pred == k))
        assert values[("f1", label)] == pytest.approx(f1_score(y == k, pred == k))
        assert values[("specificity", label)] == pytest.approx(recall_score(y != k, pred != k))
        assert values[("auc", label)] == pytest.approx(roc_auc_score(y == k, probs[:, k]))
        assert values[("youden", label)] == pytest.approx(values[("sensitivity", label)] + values[("specificity", label)] - 1)
    assert values[("auc", "macro")] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert values[("f1", "macro")] == pytest.approx(f1_score(y, pred, average="macro"))


def test_binary_question_at_a_threshold_by_hand():
    table = pd.DataFrame({"patient_id": list("ABCDEF"), "label": ["m", "m", "m", "b", "b", "b"],
                          "prob_m": [0.9, 0.6, 0.3, 0.55, 0.2, 0.1], "prob_b": [0.1, 0.4, 0.7, 0.45, 0.8, 0.9]})
    values = classification_metrics(table, Question(("b", "m"), ("m",), threshold=0.5))
    # calls: m m b | m b b -> TP 2, FN 1, FP 1, TN 2
    assert values[("sensitivity", "")] == pytest.approx(2 / 3)
    assert values[("specificity", "")] == pytest.approx(2 / 3)
    assert values[("precision", "")] == pytest.approx(2 / 3)
    assert values[("accuracy", "")] == pytest.approx(4 / 6)
    assert values[("auc", "")] == pytest.approx(8 / 9)  # one of nine pairs misordered (0.3 < 0.55)
    # Youden: cut 0.6 gives sens 2/3, spec 1; cut 0.3 sens 1, spec 2/3. A tie (J = 2/3 both):
    # the higher, more specific cut wins.
    assert youden_threshold(np.array([1, 1, 1, 0, 0, 0]), table["prob_m"].to_numpy()) == pytest.approx(0.6)


def test_delong_hand_worked_case():
    # Positives 0.35, 0.8; negatives 0.1, 0.4. V10 = [1/2, 1], V01 = [1, 1/2];
    # var = var(V10)/2 + var(V01)/2 = 0.125/2 + 0.125/2 = 0.125 (ddof 1).
    target = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    aucs, covariance = delong(target, scores[None])
    assert aucs[0] == pytest.approx(0.75)
    assert covariance[0, 0] == pytest.approx(0.125)
    auc, low, high = delong_ci(target, scores)
    assert (low, high) == pytest.approx((max(0, 0.75 - 1.959964 * 0.125 ** 0.5), 1.0))


def test_delong_variance_and_paired_test_agree_with_a_large_bootstrap():
    rng = np.random.default_rng(0)
    n = 400
    target = rng.integers(0, 2, n)
    a = target * 1.0 + rng.normal(0, 1, n)
    b = a + target * 0.3 + rng.normal(0, 0.8, n)  # correlated with a, a little better
    aucs, covariance = delong(target, np.vstack([a, b]))
    assert aucs == pytest.approx([roc_auc_score(target, a), roc_auc_score(target, b)])
    boot = []
    for _ in range(3000):
        index = rng.integers(0, n, n)
        if len(np.unique(target[index])) == 2:
            boot.append((roc_auc_score(target[index], a[index]), roc_auc_score(target[index], b[index])))
    boot = np.array(boot)
    assert np.sqrt(covariance[0, 0]) == pytest.approx(boot[:, 0].std(), rel=0.1)
    assert covariance[0, 1] == pytest.approx(np.cov(boot.T)[0, 1], rel=0.2)
    _, _, p = delong_test(target, a, b)
    z_boot = (aucs[1] - aucs[0]) / (boot[:, 1] - boot[:, 0]).std()
    assert p == pytest.approx(2 * stats.norm.sf(abs(z_boot)), rel=0.3)
    assert delong_test(target, a, a)[2] == 1.0


def test_mcnemar_exact_by_hand():
    a = np.array([True] * 10 + [False] * 2 + [True] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5)
    only_a, only_b, p = mcnemar_test(a, b)
    assert (only_a, only_b) == (10, 2)
    assert p == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_test(a, a)[2] == 1.0


def test_expected_calibration_error_by_hand():
    # Bin (0.7, 0.8]: confidence 0.75 twice, accuracy 1/2; bin (0.9, 1]: 0.95 twice, accuracy 1.
    assert expected_calibration_error([1, 0, 1, 1], [0.75, 0.75, 0.95, 0.95]) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)


def test_bootstrap_resamples_patients_not_frames():
    patients = predictions(n_patients=30, frames=1, seed=3)
    # Ten identical frames per patient carry no more information than one: the intervals agree.
    frames = pd.concat([patients] * 10, ignore_index=True)
    question = Question(LABELS)
    one = with_confidence(patients, question, n_boot=400, seed=1).set_index(["metric", "class"])
    ten = with_confidence(frames, question, n_boot=400, seed=1).set_index(["metric", "class"])
    for key in [("accuracy", ""), ("auc", "a"), ("precision", "macro"), ("balanced_accuracy", "")]:
        assert ten.loc[key, ["value", "ci_low", "ci_high"]].tolist() == pytest.approx(
            one.loc[key, ["value", "ci_low", "ci_high"]].tolist())
    # One method for the whole table, AUC rows included.
    assert set(one["ci_method"]) == {CI_METHOD}
    assert one.loc[("auc", "a"), "ci_low"] < one.loc[("auc", "a"), "value"] < one.loc[("auc", "a"), "ci_high"]
    counts = bootstrap_counts(30, 50, seed=0)
    assert counts.shape == (50, 30) and (counts.sum(1) == 30).all(), "every resample holds as many patients as the data"


def straightforward_bootstrap(table, question, n_boot, seed):
    """The reference: a Python loop over resamples, each scored with scikit-learn on the frames of
    the drawn patients (weighted by how often each was drawn); undefined metrics are NaN."""
    from sklearn.metrics import confusion_matrix

    codes, patients = pd.factorize(table["patient_id"])
    target, score, predicted = question.target(table), question.score(table), question.predict(table)
    k = 2 if question.binary else len(question.labels)
    out = []
    for counts in bootstrap_counts(len(patients), n_boot, seed):
        weight = counts[codes].astype(float)
        keep = weight > 0
        t, s, p, w = target[keep], score[keep], predicted[keep], weight[keep]
        matrix = confusion_matrix(t, p, labels=list(range(k)), sample_weight=w)
        values = {("accuracy", ""): accuracy_score(t, p, sample_weight=w)}
        per_class = {}
        for c in range(k):
            positive, called = t == c, p == c
            sens = recall_score(positive, called, sample_weight=w, zero_division=np.nan)
            spec = recall_score(~positive, ~called, sample_weight=w, zero_division=np.nan)
            prec = precision_score(positive, called, sample_weight=w, zero_division=np.nan)
            f1 = f1_score(positive, called, sample_weight=w, zero_division=np.nan)
            binary_score = s if question.binary else s[:, c]
            binary_target = t if question.binary else positive.astype(int)
            auc = roc_auc_score(binary_target, binary_score, sample_weight=w) if len(np.unique(binary_target)) == 2 else np.nan
            per_class[c] = {"sensitivity": sens, "specificity": spec, "precision": prec, "f1": f1,
                            "youden": sens + spec - 1, "auc": auc}
        assert matrix.sum() == pytest.approx(w.sum())
        out.append((values, per_class))
    return out


@pytest.mark.parametrize("binary", [False, True])
def test_vectorised_bootstrap_agrees_with_a_straightforward_loop_of_sklearn_calls(binary):
    table = predictions(n_patients=24, frames=3, seed=5, skill=1.0)
    question = Question(LABELS, ("c",), threshold=0.4) if binary else Question(LABELS)
    fast = patient_bootstrap(table, question, n_boot=150, seed=7, chunk_cells=500)  # several chunks
    slow = straightforward_bootstrap(table, question, 150, 7)
    for b, (values, per_class) in enumerate(slow):
        assert fast[("accuracy", "")][b] == pytest.approx(values[("accuracy", "")])
        for metric in ("sensitivity", "specificity", "precision", "f1", "youden", "auc"):
            for c, label in ([(1, "")] if binary else enumerate(LABELS)):
                expected = per_class[c][metric]
                got = fast[(metric, label)][b]
                assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected), (b, metric, label)
            if not binary:
                expected = np.mean([per_class[c][metric] for c in range(3)])  # NaN when any class is undefined
                got = fast[(metric, "macro")][b]
                assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected), (b, metric)


def test_undefined_resamples_are_skipped_and_counted_for_every_metric_known_answer():
    # Eight patients, one frame each. Only patient P0 is called cyst, and rightly: precision of
    # cyst is 1 in every resample that draws P0, and undefined (not 0) in every other one. The
    # two cysts are P0 and P1: sensitivity of cyst is undefined exactly when neither is drawn.
    labels = ("cyst", "solid")
    rows = []
    for p, (label, cyst_prob) in enumerate([("cyst", 0.9), ("cyst", 0.4)] + [("solid", 0.3 - 0.03 * i) for i in range(6)]):
        rows.append({"patient_id": f"P{p}", "label": label, "prob_cyst": cyst_prob, "prob_solid": 1 - cyst_prob})
    table = pd.DataFrame(rows)
    question = Question(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warning spam, no numpy division warning
        result = with_confidence(table, question, n_boot=500, seed=3).set_index(["metric", "class"])
    counts = bootstrap_counts(8, 500, seed=3)
    without_p0 = int((counts[:, 0] == 0).sum())
    without_cysts = int(((counts[:, 0] == 0) & (counts[:, 1] == 0)).sum())
    assert 0 < without_cysts < without_p0 < 250
    precision = result.loc[("precision", "cyst")]
    assert (precision["value"], precision["ci_low"], precision["ci_high"]) == (1.0, 1.0, 1.0)
    assert precision["undefined"] == without_p0 and precision["note"] == TOO_SMALL
    assert result.loc[("f1", "cyst"), "undefined"] == without_cysts  # F1: no cyst and no cyst call
    assert result.loc[("sensitivity", "cyst"), "undefined"] == without_cysts
    assert result.loc[("auc", "cyst"), "undefined"] == without_cysts  # no positive: no AUC
    assert result.loc[("sensitivity", "cyst"), "value"] == 0.5 and result.loc[("sensitivity", "cyst"), "ci_low"] == 0.0
    # The macro mean and the balanced accuracy are undefined when one class they average is.
    assert result.loc[("precision", "macro"), "undefined"] == without_p0
    assert result.loc[("balanced_accuracy", ""), "undefined"] == without_cysts
    assert result.loc[("accuracy", ""), "undefined"] == 0
    # With P0 never called a cyst, precision of cyst is undefined on the data itself.
    never = table.assign(prob_cyst=0.1, prob_solid=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = with_confidence(never, question, n_boot=200).set_index(["metric", "class"]).loc[("precision", "cyst")]
    assert np.isnan(row["value"]) and np.isnan(row["ci_low"]) and row["note"] == "undefined on these cases"


def test_a_class_never_called_has_undefined_precision_not_zero_and_no_macro_precision():
    table = predictions(n_patients=12, frames=1, seed=0)
    table[["prob_a", "prob_b", "prob_c"]] = [0.2, 0.5, 0.3]  # every call is b
    values = classification_metrics(table, Question(LABELS))
    assert np.isnan(values[("precision", "a")]) and values[("precision", "b")] == pytest.approx(1 / 3)
    assert values[("f1", "a")] == 0.0 and values[("sensitivity", "a")] == 0.0  # 2TP / (2TP + FP + FN) = 0
    # A macro mean averages every class with cases: not the defined ones only, which would flatter.
    assert np.isnan(values[("precision", "macro")])
    assert values[("f1", "macro")] == pytest.approx((0 + 2 * 4 / (4 + 12) + 0) / 3)


def test_fold_ensemble_and_patient_aggregation():
    first, second = predictions(seed=1), predictions(seed=2)
    ensemble = fold_ensemble([first, second], LABELS)
    np.testing.assert_allclose(ensemble["prob_a"], (first["prob_a"] + second["prob_a"]) / 2)
    with pytest.raises(ValueError, match="different test frames"):
        fold_ensemble([first, second.iloc[:-1]], LABELS)
    patients = aggregate(first, LABELS)
    assert len(patients) == first["patient_id"].nunique() and (patients["frames"] == 3).all()
    np.testing.assert_allclose(patients.loc[0, "prob_b"], first.loc[first["patient_id"] == "P000", "prob_b"].mean())
