"""Stage 6, evaluate: one trained run (model, input) on its validation folds and test patients,
comparisons between runs, and human readers.

Two parts are scored when present: ``test``, the held-out patients, predicted by the fold
ensemble (mean of the folds' probabilities); and ``cv``, the pooled out-of-fold predictions of
the validation folds (every non-test patient predicted by the one model that never saw it).
Both at two levels: ``image`` (every frame) and ``patient`` (frame probabilities averaged per
patient). A binary question's threshold is chosen on the validation folds by Youden's index at
each level and applied unchanged to the test patients.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sonoflow.metrics import (Question, aggregate, classification_metrics, delong_test, fold_ensemble, mcnemar_test,
                              with_confidence, youden_threshold)
from sonoflow.io import for_people  # noqa: F401  (re-exported: the tables evaluate writes)
from sonoflow.split import PatientPartition

LEVELS = ("image", "patient")
# The columns of the per-fold table: the overall figure of each metric (macro for multi-class).
FOLD_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1", "youden")


@dataclass(frozen=True)
class EvaluateSettings:
    positive: tuple[str, ...] = ()  # classes of the binary question (e.g. malignant); empty = multi-class
    n_boot: int = 2000  # bootstrap resamples of patients for the confidence intervals
    level: float = 0.95
    seed: int = 0
    calibration_bins: int = 10

    @classmethod
    def from_config(cls, config: Mapping | None) -> "EvaluateSettings":
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in config.items() if key in known and value is not None}
        if "positive" in values:
            values["positive"] = tuple([values["positive"]] if isinstance(values["positive"], str) else values["positive"])
        return cls(**values)


def at_level(table: pd.DataFrame, labels: Sequence[str], level: str) -> pd.DataFrame:
    return table if level == "image" else aggregate(table, labels, "patient_id")


def base_question(labels: Sequence[str], settings: EvaluateSettings) -> Question:
    unknown = sorted(set(settings.positive) - set(labels))
    if unknown:
        raise ValueError(f"evaluate.positive {unknown} are not among the labels {list(labels)}")
    if set(settings.positive) == set(labels):
        raise ValueError("evaluate.positive names every label: nothing would be negative")
    return Question(tuple(labels), tuple(settings.positive))


def questions_by_level(validation: pd.DataFrame, labels: Sequence[str], settings: EvaluateSettings) -> dict[str, Question]:
    """The question per level, a binary one with its Youden threshold from the pooled validation folds."""
    question = base_question(labels, settings)
    out = {}
    for level in LEVELS:
        if question.binary:
            table = at_level(validation, labels, level)
            threshold = youden_threshold(question.target(table), question.score(table))
            out[level] = Question(question.labels, question.positive, threshold)
        else:
            out[level] = question
    return out


@dataclass
class RunEvaluation:
    folds: pd.DataFrame  # per fold and level: the overall metrics, then mean and sd rows
    headline: pd.DataFrame  # part, level, metric, class, value, 95% CI
    thresholds: dict  # level -> threshold (binary question) or None
    parts: dict[str, pd.DataFrame] = field(default_factory=dict)  # part -> frame-level predictions


def check_disjoint(val_tables: Sequence[pd.DataFrame], test_tables: Sequence[pd.DataFrame]) -> None:
    """Evaluation refuses predictions whose validation and test patients overlap, and folds whose
    validation patients overlap each other (out-of-fold predictions must be one per patient)."""
    test = sorted(set().union(*(set(t["patient_id"]) for t in test_tables))) if test_tables else []
    for first, second in itertools.combinations(range(len(val_tables)), 2):
        PatientPartition(train=(), val=sorted(set(val_tables[first]["patient_id"])),
                         test=sorted(set(val_tables[second]["patient_id"])))
    for table in val_tables:
        PatientPartition(train=(), val=sorted(set(table["patient_id"])), test=test)


def fold_table(val_tables: Sequence[pd.DataFrame], labels: Sequence[str], questions: Mapping[str, Question]) -> pd.DataFrame:
    """The ovarian study's layout: one row per validation fold, then mean and sd over folds."""
    rows = []
    for level in LEVELS:
        per_fold = []
        for fold, table in enumerate(val_tables):
            values = classification_metrics(at_level(table, labels, level), questions[level])
            overall = "" if questions[level].binary else "macro"
            row = {"level": level, "fold": str(fold), "patients": table["patient_id"].nunique(), "frames": len(table)}
            for metric in FOLD_METRICS:
                row[metric] = values.get((metric, overall), values.get((metric, "")))
            per_fold.append(row)
        rows += per_fold
        numbers = pd.DataFrame(per_fold)[list(FOLD_METRICS)]
        rows.append({"level": level, "fold": "mean", **numbers.mean().to_dict()})
        rows.append({"level": level, "fold": "sd", **numbers.std(ddof=1).to_dict()})
    return pd.DataFrame(rows).astype({"patients": "Int64", "frames": "Int64"})


def evaluate_run(val_tables: Sequence[pd.DataFrame], test_tables: Sequence[pd.DataFrame], labels: Sequence[str],
                 settings: EvaluateSettings) -> RunEvaluation:
    """Everything evaluate writes for one run; ``test_tables`` may be empty tables (no test set)."""
    check_disjoint(val_tables, [t for t in test_tables if len(t)])
    validation = pd.concat(val_tables, ignore_index=True)
    questions = questions_by_level(validation, labels, settings)
    parts = {"cv": validation}
    if test_tables and all(len(t) for t in test_tables):
        parts["test"] = fold_ensemble(test_tables, labels)
    headline = []
    for (part, table), level in itertools.product(parts.items(), LEVELS):
        scored = with_confidence(at_level(table, labels, level), questions[level], settings.n_boot, settings.seed,
                                 settings.level)
        headline.append(scored.assign(part=part, level=level, patients=table["patient_id"].nunique(),
                                      cases=len(at_level(table, labels, level))))
    columns = ["part", "level", "patients", "cases", "metric", "class", "value", "ci_low", "ci_high", "resamples",
               "undefined", "ci_method", "note"]
    return RunEvaluation(folds=fold_table(val_tables, labels, questions),
                         headline=pd.concat(headline, ignore_index=True)[columns],
                         thresholds={level: q.threshold for level, q in questions.items()}, parts=parts)


# --- Comparing runs ------------------------------------------------------------------------------------


def compare_runs(runs: Mapping[str, pd.DataFrame], labels: Sequence[str], settings: EvaluateSettings,
                 thresholds: Mapping[str, float | None] | None = None, level: str = "patient") -> pd.DataFrame:
    """Paired tests between every two runs on the same cases (``runs``: name -> predictions of
    one part): DeLong for the AUCs (per class one-vs-rest, or of the binary question) and exact
    McNemar for the calls. At patient level by default: DeLong and McNemar assume independent
    cases, which frames of one patient are not."""
    question = base_question(labels, settings)
    tables = {name: at_level(table, labels, level).sort_values(["patient_id"] + (["frame_index"] if level == "image" else []))
              for name, table in runs.items()}
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(tables.items(), 2):
        keys = ["patient_id", "item_id", "frame_index"] if level == "image" else ["patient_id"]
        if not a[keys].reset_index(drop=True).equals(b[keys].reset_index(drop=True)):
            raise ValueError(f"{name_a} and {name_b} predicted different cases; they cannot be compared")
        q_a = Question(question.labels, question.positive, (thresholds or {}).get(name_a))
        q_b = Question(question.labels, question.positive, (thresholds or {}).get(name_b))
        target = q_a.target(a)
        targets = {"positive": (target, q_a.score(a), q_b.score(b))} if question.binary else {
            label: ((target == k).astype(int), q_a.score(a)[:, k], q_b.score(b)[:, k]) for k, label in enumerate(labels)}
        correct_a, correct_b = q_a.predict(a) == target, q_b.predict(b) == target
        only_a, only_b, mcnemar_p = mcnemar_test(correct_a, correct_b)
        for target_name, (binary_target, score_a, score_b) in targets.items():
            enough = min(binary_target.sum(), len(binary_target) - binary_target.sum()) >= 2
            auc_a, auc_b, delong_p = delong_test(binary_target, score_a, score_b) if enough else (np.nan,) * 3
            rows.append({"run_a": name_a, "run_b": name_b, "level": level, "cases": len(a), "target": target_name,
                         "auc_a": auc_a, "auc_b": auc_b, "delong_p": delong_p,
                         "accuracy_a": float(correct_a.mean()), "accuracy_b": float(correct_b.mean()),
                         "only_a_right": only_a, "only_b_right": only_b, "mcnemar_p": mcnemar_p})
    return pd.DataFrame(rows)


def read_headline(path) -> pd.DataFrame:
    """A run's headline.csv; the overall rows' empty class stays an empty string."""
    return pd.read_csv(path, dtype={"class": str, "part": str, "level": str}).fillna({"class": ""})


TABLE_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1")


def model_table(headlines: Mapping[str, pd.DataFrame], pairwise: pd.DataFrame, part: str) -> pd.DataFrame:
    """The six-model studies' table: one row per run and level with AUC, accuracy, sensitivity,
    specificity, precision and F1 (each with its 95% CI from the run's headline; macro for
    multi-class), and at patient level the DeLong p-value against the run with the highest AUC
    (binary question; multi-class AUCs are compared per class in ``pairwise``)."""
    rows = []
    for name, headline in headlines.items():
        of_part = headline[headline["part"] == part]
        for level, table in of_part.groupby("level", sort=False):
            overall = table[table["class"].isin(["", "macro"])].drop_duplicates("metric").set_index("metric")
            row = {"run": name, "part": part, "level": level, "patients": int(table["patients"].iloc[0]),
                   "cases": int(table["cases"].iloc[0])}
            for metric in TABLE_METRICS:
                found = metric in overall.index
                row[metric] = overall.at[metric, "value"] if found else np.nan
                row[f"{metric}_ci_low"] = overall.at[metric, "ci_low"] if found else np.nan
                row[f"{metric}_ci_high"] = overall.at[metric, "ci_high"] if found else np.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["best_auc"] = False
    table["delong_p_vs_best"] = np.nan
    binary = len(pairwise) and set(pairwise["target"]) == {"positive"}
    for level, rows_of_level in table.groupby("level"):
        best = rows_of_level["auc"].idxmax() if rows_of_level["auc"].notna().any() else None
        if best is None:
            continue
        table.loc[best, "best_auc"] = True
        if not binary or level not in set(pairwise["level"]):
            continue
        best_run = table.at[best, "run"]
        for index in rows_of_level.index.drop(best):
            run = table.at[index, "run"]
            pair = pairwise[(pairwise["level"] == level) & (((pairwise["run_a"] == run) & (pairwise["run_b"] == best_run)) |
                                                           ((pairwise["run_a"] == best_run) & (pairwise["run_b"] == run)))]
            if len(pair):
                table.loc[index, "delong_p_vs_best"] = pair["delong_p"].iloc[0]
    return table.sort_values(["level", "auc"], ascending=[True, False], kind="stable").reset_index(drop=True)


# --- Readers ------------------------------------------------------------------------------------------

READER_COLUMNS = ("reader", "label")


def read_readers(path) -> pd.DataFrame:
    """Reader calls: reader, [session], item_id or patient_id, label (the call), [score]."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in READER_COLUMNS if c not in table.columns]
    keys = [c for c in ("item_id", "patient_id") if c in table.columns]
    if missing or not keys:
        raise ValueError(f"reader table {path} needs columns reader, label and item_id or patient_id; "
                         f"it has {list(table.columns)}")
    if "session" not in table.columns:
        table["session"] = ""
    table["score"] = pd.to_numeric(table["score"], errors="raise") if "score" in table.columns else np.nan
    return table


def evaluate_readers(readers: pd.DataFrame, model: pd.DataFrame, labels: Sequence[str], settings: EvaluateSettings,
                     threshold: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each (reader, session) scored on the cases they read, and compared with the model on the
    same cases: McNemar on the calls, DeLong on AUC (a reader's score, or the call itself).

    ``model`` holds frame predictions of the same cases (e.g. the test fold ensemble); they are
    averaged per item or patient, whichever key the reader table uses.
    """
    key = "item_id" if "item_id" in readers.columns else "patient_id"
    question = Question(tuple(labels), tuple(settings.positive), threshold)
    model_cases = aggregate(model, labels, key).set_index(key)
    unknown_labels = sorted(set(readers["label"]) - set(labels))
    if unknown_labels:
        raise ValueError(f"reader calls {unknown_labels} are not among the labels {list(labels)}")
    metrics, comparisons = [], []
    for (reader, session), calls in readers.groupby(["reader", "session"], sort=True):
        missing = sorted(set(calls[key]) - set(model_cases.index))
        if missing:
            raise ValueError(f"reader {reader} {session}: {key}s {missing[:5]} have no model prediction")
        cases = model_cases.loc[calls[key]].reset_index()
        as_read = cases[["patient_id", key, "label"]].copy()
        for label in labels:  # the call as a one-hot "probability"
            as_read[f"prob_{label}"] = (calls["label"].to_numpy() == label).astype(float)
        call_question = Question(question.labels, question.positive, 0.5 if question.binary else None)
        values = classification_metrics(as_read, call_question)
        has_score = question.binary and calls["score"].notna().all()
        if has_score:  # AUC from the reader's graded score instead of the bare call
            scored = as_read.copy()
            scored[[f"prob_{p}" for p in question.positive]] = 0.0
            scored[f"prob_{question.positive[0]}"] = calls["score"].to_numpy(float)
            values[("auc", "")] = classification_metrics(scored, Question(question.labels, question.positive, 0.5))[("auc", "")]
        for (metric, cls), value in values.items():
            metrics.append({"reader": reader, "session": session, "cases": len(calls), "metric": metric,
                            "class": cls, "value": value})
        target = question.target(cases)
        correct_reader = call_question.predict(as_read) == target
        correct_model = question.predict(cases) == target
        only_model, only_reader, mcnemar_p = mcnemar_test(correct_model, correct_reader)
        row = {"reader": reader, "session": session, "cases": len(calls),
               "accuracy_model": float(correct_model.mean()), "accuracy_reader": float(correct_reader.mean()),
               "only_model_right": only_model, "only_reader_right": only_reader, "mcnemar_p": mcnemar_p}
        if question.binary and min(target.sum(), len(target) - target.sum()) >= 2:
            reader_score = calls["score"].to_numpy(float) if has_score else call_question.score(as_read)
            row["auc_model"], row["auc_reader"], row["delong_p"] = delong_test(target, question.score(cases), reader_score)
        comparisons.append(row)
    return pd.DataFrame(metrics), pd.DataFrame(comparisons)
