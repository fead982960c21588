"""Classification metrics, confidence intervals and tests on prediction tables.

A prediction table has one row per frame: ids, the true ``label`` and one ``prob_<class>`` column
per class. Metrics come from scikit-learn; what it lacks is here: specificity and Youden per
class, DeLong's AUC variance and paired test (Sun & Xu's fast algorithm), the exact McNemar test,
a bootstrap over patients (frames of one patient are not independent), and the expected
calibration error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support,
                             roc_auc_score, roc_curve)

ID_COLUMNS = ["shard", "row", "patient_id", "item_id", "frame_index", "label"]


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"shard": str, "patient_id": str, "item_id": str, "label": str}, keep_default_na=False)


def probabilities(table: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    return table[[f"prob_{name}" for name in labels]].to_numpy(dtype=np.float64)


def class_indices(table: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(table["label"]) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not among {list(labels)}")
    return table["label"].map(index).to_numpy()


# --- Aggregation and ensembles ------------------------------------------------------------------


def fold_ensemble(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """Mean of the folds' probabilities per test frame (every fold predicts the same test frames)."""
    columns = [f"prob_{name}" for name in labels]
    stacked = pd.concat(tables, ignore_index=True)
    keys = [key for key in ID_COLUMNS if key in stacked.columns]
    ensemble = stacked.groupby(keys, sort=False, as_index=False)[columns].mean()
    counts = stacked.groupby(keys, sort=False).size().to_numpy()
    if not (counts == len(tables)).all():
        raise ValueError("folds predicted different test frames; cannot ensemble")
    ensemble["predicted"] = [labels[i] for i in ensemble[columns].to_numpy().argmax(1)]
    return ensemble


def aggregate(table: pd.DataFrame, labels: Sequence[str], by: str = "patient_id") -> pd.DataFrame:
    """Frame probabilities averaged per patient (or item): one row each, with its frame count."""
    columns = [f"prob_{name}" for name in labels]
    keys = ["patient_id", "label"] if by == "patient_id" else ["patient_id", by, "label"]
    grouped = table.groupby(keys, sort=True)
    out = grouped[columns].mean().reset_index()
    out["frames"] = grouped.size().to_numpy()
    out["predicted"] = [labels[i] for i in out[columns].to_numpy().argmax(1)]
    return out


# --- The binary question --------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """What is scored: all classes (multi-class, argmax), or ``positive`` classes vs the rest at
    a probability ``threshold`` (chosen on validation data by Youden's index)."""

    labels: tuple[str, ...]
    positive: tuple[str, ...] = ()
    threshold: float | None = None

    @property
    def binary(self) -> bool:
        return bool(self.positive)

    def target(self, table: pd.DataFrame) -> np.ndarray:
        """Class indices, or 1/0 for positive/rest."""
        if self.binary:
            return table["label"].isin(self.positive).to_numpy().astype(int)
        return class_indices(table, self.labels)

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """(N, K) probabilities, or the summed probability of the positive classes."""
        if self.binary:
            return table[[f"prob_{name}" for name in self.positive]].to_numpy(np.float64).sum(1)
        return probabilities(table, self.labels)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        if self.binary:
            return (self.score(table) >= (0.5 if self.threshold is None else self.threshold)).astype(int)
        return self.score(table).argmax(1)

    @property
    def classes(self) -> list[str]:
        return ["positive"] if self.binary else list(self.labels)


def youden_threshold(target: np.ndarray, score: np.ndarray) -> float:
    """The score cut maximising sensitivity + specificity - 1 (ties: the highest cut)."""
    if len(np.unique(target)) < 2:
        raise ValueError("a threshold needs both positive and negative cases")
    fpr, tpr, thresholds = roc_curve(target, score)
    j = tpr - fpr
    # Ties within rounding (1 - 1/3 vs 2/3 - 0) go to the highest cut: the more specific call.
    return float(min(thresholds[np.isclose(j, j.max(), rtol=0, atol=1e-12)].max(), 1.0))


# --- Point metrics --------------------------------------------------------------------------------


def _per_class(target: np.ndarray, predicted: np.ndarray, n_classes: int, weight) -> dict[str, np.ndarray]:
    matrix = confusion_matrix(target, predicted, labels=list(range(n_classes)), sample_weight=weight).astype(float)
    tp = np.diag(matrix)
    fn, fp = matrix.sum(1) - tp, matrix.sum(0) - tp
    tn = matrix.sum() - tp - fn - fp
    precision, recall, f1, _ = precision_recall_fscore_support(target, predicted, labels=list(range(n_classes)),
                                                               sample_weight=weight, zero_division=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        specificity = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    recall = np.where(tp + fn > 0, recall, np.nan)
    return {"sensitivity": recall, "specificity": specificity, "precision": precision, "f1": f1,
            "youden": recall + specificity - 1}


def _auc(target: np.ndarray, score: np.ndarray, weight=None) -> float:
    return float(roc_auc_score(target, score, sample_weight=weight)) if len(np.unique(target)) == 2 else float("nan")


def classification_metrics(table: pd.DataFrame, question: Question, weight: np.ndarray | None = None) -> dict:
    """Every metric of ``question`` on ``table``: {(metric, class): value}; class "" is overall.

    Multi-class: accuracy, balanced accuracy, macro AUC, and per class (one-vs-rest, from the
    argmax call) AUC, sensitivity, specificity, precision, F1 and Youden, plus their macro means.
    Binary: AUC of the positive score, and the others at the question's threshold.
    """
    target, score, predicted = question.target(table), question.score(table), question.predict(table)
    if weight is not None:
        keep = weight > 0
        target, score, predicted, weight = target[keep], score[keep], predicted[keep], weight[keep]
    out = {("accuracy", ""): float(accuracy_score(target, predicted, sample_weight=weight)),
           ("balanced_accuracy", ""): float(balanced_accuracy_score(target, predicted, sample_weight=weight))}
    if question.binary:
        per_class = _per_class(target, predicted, 2, weight)
        out[("auc", "")] = _auc(target, score, weight)
        for name, values in per_class.items():
            out[(name, "")] = float(values[1])
        return out
    n = len(question.labels)
    per_class = _per_class(target, predicted, n, weight)
    aucs = np.array([_auc((target == k).astype(int), score[:, k], weight) for k in range(n)])
    per_class["auc"] = aucs
    for name, values in per_class.items():
        for k, label in enumerate(question.labels):
            out[(name, label)] = float(values[k])
        out[(name, "macro")] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def metrics_frame(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"metric": m, "class": c, "value": v} for (m, c), v in values.items()])


# --- DeLong ---------------------------------------------------------------------------------------


def delong(target: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance (k, k) for k score vectors (k, n) on one binary target.

    Fast algorithm of Sun & Xu (2014) via mid-ranks; the components are DeLong's structural
    components V10 (positives) and V01 (negatives).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    target = np.asarray(target).astype(bool)
    positives, negatives = scores[:, target], scores[:, ~target]
    m, n = positives.shape[1], negatives.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least two positives and two negatives, got {m} and {n}")
    rank_pos = np.apply_along_axis(stats.rankdata, 1, positives)
    rank_neg = np.apply_along_axis(stats.rankdata, 1, negatives)
    rank_all = np.apply_along_axis(stats.rankdata, 1, np.hstack([positives, negatives]))
    aucs = rank_all[:, :m].sum(1) / (m * n) - (m + 1) / (2 * n)
    v10 = (rank_all[:, :m] - rank_pos) / n  # per positive: share of negatives scored below it
    v01 = 1 - (rank_all[:, m:] - rank_neg) / m  # per negative: share of positives scored above it
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def delong_ci(target: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """AUC with its DeLong confidence interval (normal approximation, clipped to [0, 1])."""
    aucs, covariance = delong(target, score[None])
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(covariance[0, 0])
    return float(aucs[0]), float(max(0.0, aucs[0] - half)), float(min(1.0, aucs[0] + half))


def delong_test(target: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> tuple[float, float, float]:
    """Paired DeLong test of two AUCs on the same cases: (auc_a, auc_b, two-sided p)."""
    aucs, covariance = delong(target, np.vstack([score_a, score_b]))
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    if variance <= 0:
        return float(aucs[0]), float(aucs[1]), 1.0 if np.isclose(aucs[0], aucs[1]) else 0.0
    z = (aucs[0] - aucs[1]) / np.sqrt(variance)
    return float(aucs[0]), float(aucs[1]), float(2 * stats.norm.sf(abs(z)))


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test on paired correct/wrong calls: (a right & b wrong, a wrong & b right, p)."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


# --- Bootstrap over patients ------------------------------------------------------------------------


def patient_bootstrap(table: pd.DataFrame, statistic: Callable[[np.ndarray], dict], n_boot: int = 2000,
                      seed: int = 0) -> list[dict]:
    """``statistic(weights)`` on ``n_boot`` resamples of the patients (with replacement): every
    frame of a drawn patient enters as often as the patient was drawn, so the clustering of frames
    within patients is respected."""
    codes, patients = pd.factorize(table["patient_id"])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(patients), len(patients)), minlength=len(patients))
        out.append(statistic(counts[codes].astype(float)))
    return out


def with_confidence(table: pd.DataFrame, question: Question, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> pd.DataFrame:
    """Every metric with a 95% CI: percentile bootstrap over patients, and for the AUCs of a table
    with one row per patient, DeLong's interval (its cases must be independent)."""
    point = classification_metrics(table, question)
    samples = patient_bootstrap(table, lambda w: classification_metrics(table, question, w), n_boot, seed)
    rows = []
    alpha = (1 - level) / 2
    one_per_patient = table["patient_id"].is_unique
    for key, value in point.items():
        values = np.array([s.get(key, np.nan) for s in samples], dtype=float)
        values = values[np.isfinite(values)]
        low, high = (np.quantile(values, [alpha, 1 - alpha]) if len(values) >= 0.5 * n_boot else (np.nan, np.nan))
        row = {"metric": key[0], "class": key[1], "value": value, "ci_low": float(low), "ci_high": float(high),
               "ci_method": "patient bootstrap"}
        if key[0] == "auc" and key[1] != "macro" and one_per_patient and np.isfinite(value):
            target = question.target(table)
            score = question.score(table)
            if not question.binary:
                k = list(question.labels).index(key[1])
                target, score = (target == k).astype(int), score[:, k]
            if min(target.sum(), len(target) - target.sum()) >= 2:
                _, row["ci_low"], row["ci_high"] = delong_ci(target, score, level)
                row["ci_method"] = "DeLong"
        rows.append(row)
    return pd.DataFrame(rows)


# --- Calibration ------------------------------------------------------------------------------------


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> float:
    """ECE: the frame-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    correct, confidence = np.asarray(correct, float), np.asarray(confidence, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            error += chosen.mean() * abs(correct[chosen].mean() - confidence[chosen].mean())
    return float(error)
