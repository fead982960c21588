"""Classification metrics, confidence intervals and tests on prediction tables.

A prediction table has one row per frame: ids, the true ``label`` and one ``prob_<class>`` column
per class. Every metric is a ratio of confusion counts or a (weighted) Mann-Whitney AUC, computed
from per-patient sufficient statistics so that 2,000 bootstrap resamples over patients (frames of
one patient are not independent) are a few matrix products; the unit tests check every figure
against scikit-learn's functions. Also here: DeLong's AUC variance and paired test (Sun & Xu's
fast algorithm), the exact McNemar test, Youden's threshold and the expected calibration error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse, stats
from sklearn.metrics import roc_curve

from sonoflow.stage_settings import POOLINGS

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
    """Mean of the folds' probabilities per test frame (every fold predicts the same test frames),
    and of their ``attention`` weights where the tables have them."""
    columns = [f"prob_{name}" for name in labels]
    stacked = pd.concat(tables, ignore_index=True)
    keys = [key for key in ID_COLUMNS if key in stacked.columns]
    averaged = columns + (["attention"] if "attention" in stacked.columns else [])
    ensemble = stacked.groupby(keys, sort=False, as_index=False)[averaged].mean()
    counts = stacked.groupby(keys, sort=False).size().to_numpy()
    if not (counts == len(tables)).all():
        raise ValueError("folds predicted different test frames; cannot ensemble")
    ensemble["predicted"] = [labels[i] for i in ensemble[columns].to_numpy().argmax(1)]
    return ensemble


def aggregate(table: pd.DataFrame, labels: Sequence[str], by: str = "patient_id", pooling: str = "mean",
              k: int = 3) -> pd.DataFrame:
    """Frame probabilities pooled per patient (or item): one row each, with its frame count.

    ``mean``: the mean of the frames' probabilities. ``topk``: per class, the mean of that class's
    ``k`` highest frame probabilities (all frames when there are fewer), renormalised to sum to one:
    a unit whose few frames show the lesion is not averaged away by its many frames that do not.
    ``attention``: the mean weighted by the table's ``attention`` column (each frame's weight
    from the attention network of ``sonoflow.attention``, renormalised within the unit).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
    columns = [f"prob_{name}" for name in labels]
    keys = ["patient_id", "label"] if by == "patient_id" else ["patient_id", by, "label"]
    grouped = table.groupby(keys, sort=True)
    if pooling == "mean":
        out = grouped[columns].mean().reset_index()
    elif pooling == "attention":
        if "attention" not in table.columns:
            raise ValueError("attention pooling needs each frame's `attention` weight (rule attend's tables)")
        weighted = table[columns].mul(table["attention"].to_numpy(dtype=np.float64), axis=0)
        weighted[keys] = table[keys]
        weighted["_w"] = table["attention"].to_numpy(dtype=np.float64)
        sums = weighted.groupby(keys, sort=True)[columns + ["_w"]].sum()
        out = sums[columns].div(sums["_w"].where(sums["_w"] > 0), axis=0).reset_index()
    else:
        if k < 1:
            raise ValueError(f"top-k pooling needs k >= 1, got {k}")
        out = grouped.size().reset_index()[keys]
        for column in columns:
            top = table.sort_values(column, ascending=False, kind="stable").groupby(keys, sort=True).head(k)
            out[column] = top.groupby(keys, sort=True)[column].mean().to_numpy()
        totals = out[columns].sum(axis=1).to_numpy()
        out[columns] = out[columns].to_numpy() / np.where(totals > 0, totals, 1.0)[:, None]
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
#
# One rule for every metric: a metric is undefined (NaN) when its denominator is empty, never 0:
# sensitivity without a case of the class, specificity without a case of the others, precision
# without a call of the class, F1 = 2TP / (2TP + FP + FN) without either, Youden when sensitivity
# or specificity is, an AUC without both classes. A macro mean (and the balanced accuracy, the
# macro sensitivity) averages every class that has cases in the data, so it is undefined when one
# of those is (e.g. macro precision when a class is never called), rather than an average of the
# classes that happen to be defined. Point estimates and bootstrap resamples follow the same rule:
# an undefined resample is skipped and counted, never scored 0.

PER_CLASS = ("sensitivity", "specificity", "precision", "f1", "youden")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _rates(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """Per class (one-vs-rest) rates from confusion matrices (..., K, K) of true x called counts:
    arrays (..., K), NaN where undefined."""
    tp = np.diagonal(matrices, axis1=-2, axis2=-1)
    actual, called = matrices.sum(-1), matrices.sum(-2)
    total = matrices.sum((-2, -1))[..., None]
    sensitivity, precision = _ratio(tp, actual), _ratio(tp, called)
    specificity = _ratio(total - actual - called + tp, total - actual)
    f1 = _ratio(2 * tp, actual + called)
    return {"sensitivity": sensitivity, "specificity": specificity, "precision": precision, "f1": f1,
            "youden": sensitivity + specificity - 1}


def _mean_over(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Mean over ``classes`` (a boolean mask of the last axis); NaN where any of them is NaN."""
    return values[..., classes].mean(-1) if classes.any() else np.full(values.shape[:-1], np.nan)


class PatientStatistics:
    """Sufficient statistics of a prediction table per patient, so that every metric of any
    weighting of the patients (a bootstrap resample: how often each patient was drawn) is a matrix
    product: the patient's confusion counts, and per binary target its positive and negative frames
    at each distinct score (for the weighted Mann-Whitney AUC, ties counting one half).

    ``groups``: "patient_id" (a patient is the unit) or None (every row its own unit).
    """

    def __init__(self, table: pd.DataFrame, question: Question, groups: str | None = "patient_id"):
        self.question = question
        target, score, predicted = question.target(table), question.score(table), question.predict(table)
        if groups is None:
            codes, self.n_units = np.arange(len(table)), len(table)
        else:
            codes, uniques = pd.factorize(table[groups])
            self.n_units = len(uniques)
        self.k = 2 if question.binary else len(question.labels)
        cells = np.asarray(target) * self.k + np.asarray(predicted)
        self.confusion = sparse.csr_matrix((np.ones(len(table)), (codes, cells)), shape=(self.n_units, self.k ** 2))
        # The classes a macro mean averages: those with cases in the data.
        self.averaged = np.asarray(self.confusion.sum(0)).reshape(self.k, self.k).sum(1) > 0
        if question.binary:
            binary_targets = {"": (target, score)}
        else:
            binary_targets = {label: ((target == k).astype(int), score[:, k]) for k, label in enumerate(question.labels)}
        self.auc_parts = {}
        for name, (positive, values) in binary_targets.items():
            levels, level = np.unique(values, return_inverse=True)
            shape = (self.n_units, len(levels))
            self.auc_parts[name] = tuple(
                sparse.csr_matrix(((positive == side).astype(float), (codes, level)), shape=shape).T.tocsr()
                for side in (1, 0))

    def _aucs(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, (positives, negatives) in self.auc_parts.items():
            pos, neg = (positives @ weights.T).T, (negatives @ weights.T).T  # (B, levels)
            below = np.cumsum(neg, axis=1) - neg
            out[name] = _ratio((pos * (below + 0.5 * neg)).sum(1), pos.sum(1) * neg.sum(1))
        return out

    def _rates(self, weights: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        matrices = (self.confusion.T @ weights.T).T.reshape(-1, self.k, self.k)
        accuracy = _ratio(np.trace(matrices, axis1=1, axis2=2), matrices.sum((1, 2)))
        rates = _rates(matrices)
        aucs = self._aucs(weights)
        rates["auc"] = aucs[""][:, None] if self.question.binary else np.stack([aucs[k] for k in self.question.labels], 1)
        return accuracy, rates

    def metrics(self, weights: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """Every metric (key: (metric, class); class "" overall, "macro" the mean over classes) for
        each row of ``weights`` (B, units). A macro mean (and the balanced accuracy, the mean of the
        classes' sensitivities) averages the classes that have cases in the data (every unit
        weighted once); where one of them is undefined, so is the mean."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        accuracy, rates = self._rates(weights)
        out = {("accuracy", ""): accuracy,
               ("balanced_accuracy", ""): _mean_over(rates["sensitivity"], self.averaged)}
        if self.question.binary:  # column 1 is the positive class
            out[("auc", "")] = rates["auc"][:, 0]
            for name in PER_CLASS:
                out[(name, "")] = rates[name][:, 1]
            return out
        for name in (*PER_CLASS, "auc"):
            for k, label in enumerate(self.question.labels):
                out[(name, label)] = rates[name][:, k]
            out[(name, "macro")] = _mean_over(rates[name], self.averaged)
        return out


def classification_metrics(table: pd.DataFrame, question: Question, weight: np.ndarray | None = None) -> dict:
    """Every metric of ``question`` on ``table``: {(metric, class): value}; class "" is overall.

    Multi-class: accuracy, balanced accuracy, and per class (one-vs-rest, from the argmax call)
    sensitivity, specificity, precision, F1, Youden and AUC, plus their macro means. Binary: AUC of
    the positive score, and the others at the question's threshold. ``weight``: per row (frame).
    Undefined metrics are NaN (the rule above).
    """
    statistics = PatientStatistics(table, question, groups=None)
    values = statistics.metrics(np.ones(len(table)) if weight is None else weight)
    return {key: float(value[0]) for key, value in values.items()}

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

CI_METHOD = "patient bootstrap (percentile)"
TOO_SMALL = "n too small for an interval"


def bootstrap_counts(n_patients: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_patients): how often each patient is drawn in each resample (with replacement)."""
    draws = np.random.default_rng(seed).integers(0, n_patients, (n_boot, n_patients))
    cells = (draws + n_patients * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(cells, minlength=n_boot * n_patients).reshape(n_boot, n_patients)


def patient_bootstrap(table: pd.DataFrame, question: Question, n_boot: int = 2000, seed: int = 0,
                      chunk_cells: int = 4_000_000) -> dict[tuple[str, str], np.ndarray]:
    """Every metric on ``n_boot`` resamples of the patients (with replacement): a drawn patient's
    frames all enter, as often as the patient was drawn, so the clustering of frames within
    patients is respected. Vectorised: the per-patient statistics are computed once and each
    resample is a weighting of them. Returns (metric, class) -> (n_boot,) values, NaN where the
    metric is undefined in that resample."""
    statistics = PatientStatistics(table, question)
    counts = bootstrap_counts(statistics.n_units, n_boot, seed)
    levels = max(positives.shape[0] for positives, _ in statistics.auc_parts.values())
    step = max(1, chunk_cells // max(levels, statistics.n_units, 1))
    parts = [statistics.metrics(counts[start:start + step]) for start in range(0, n_boot, step)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} if parts else {}


def interval_note(value: float, low: float, high: float, undefined: int, n_boot: int) -> str:
    """Why a row has no usable interval ("" when it has one)."""
    if not np.isfinite(value):
        return "undefined on these cases"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"undefined in {undefined} of {n_boot} resamples: no interval"
    if round(high - low, 3) == 0:
        return TOO_SMALL
    return ""


def with_confidence(table: pd.DataFrame, question: Question, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> pd.DataFrame:
    """Every metric with its confidence interval, one method for the whole table: the percentile
    bootstrap over patients (valid at image level, where frames of a patient are not independent,
    and at patient level alike). Resamples where a metric is undefined are skipped and counted
    (``undefined``); with fewer than half of them defined there is no interval. ``note`` flags
    a degenerate interval (``n too small for an interval``) and rows without one."""
    statistics = PatientStatistics(table, question)
    point = {key: float(value[0]) for key, value in statistics.metrics(np.ones(statistics.n_units)).items()}
    samples = patient_bootstrap(table, question, n_boot, seed)
    alpha = (1 - level) / 2
    rows = []
    for key, value in point.items():
        values = samples[key]
        finite = values[np.isfinite(values)]
        undefined = int(n_boot - len(finite))
        enough = np.isfinite(value) and len(finite) >= 0.5 * n_boot and len(finite) > 0
        low, high = np.quantile(finite, [alpha, 1 - alpha]) if enough else (np.nan, np.nan)
        rows.append({"metric": key[0], "class": key[1], "value": value, "ci_low": float(low), "ci_high": float(high),
                     "resamples": n_boot, "undefined": undefined, "ci_method": CI_METHOD,
                     "note": interval_note(value, low, high, undefined, n_boot)})
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


def reliability(table: pd.DataFrame, question: Question) -> tuple[np.ndarray, np.ndarray]:
    """What a reliability diagram and the ECE compare: (confidence, outcome) per row. For a binary
    question the positive score and whether the case is positive; for a multi-class one the
    top class's probability and whether that call is right."""
    if question.binary:
        return question.score(table), question.target(table).astype(float)
    probs = question.score(table)
    return probs.max(1), (probs.argmax(1) == question.target(table)).astype(float)
