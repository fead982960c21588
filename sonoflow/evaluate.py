"""Stage 6, evaluate: one trained run (model, input) on its validation folds and test patients,
comparisons between runs, and human readers.

Two parts are scored when present: ``test``, the held-out patients, predicted by the fold
ensemble (mean of the folds' probabilities); and ``cv``, the pooled out-of-fold predictions of
the validation folds (every non-test patient predicted by the one model that never saw it).
Both at two levels: ``image`` (every frame) and ``patient`` (frame probabilities pooled per
patient: mean, top-k or learned attention weights), or ``item`` where patients carry items of
several labels (the split stays grouped by patient). A binary question's threshold is chosen on the validation folds by
Youden's index at each level and applied unchanged to the test patients. Probabilities are first
calibrated by temperature scaling fitted on the validation folds (sonoflow.calibrate).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sonoflow.calibrate import calibrate_table, fit_temperature, log_probabilities, negative_log_likelihood
from sonoflow.metrics import (Question, aggregate, class_indices, classification_metrics, delong_test,
                              expected_calibration_error, fold_ensemble, mcnemar_test, read_predictions, reliability,
                              with_confidence, youden_threshold)
from sonoflow.io import FileFormatError, read_json_object, save_json
from sonoflow.io import for_people  # noqa: F401  (re-exported: the tables evaluate writes)
from sonoflow.split import PatientPartition, resolve_unit
from sonoflow.stage_settings import AttentionSettings, EvaluateSettings  # noqa: F401  (re-exported)

IMAGE = "image"
LEVELS = ("image", "patient")  # the levels of a run whose unit is the patient (the default)
LEVEL_KEYS = {"patient": "patient_id", "item": "item_id"}
# The columns of the per-fold table: the overall figure of each metric (macro for multi-class).
FOLD_METRICS = ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1", "youden")


def levels_of(unit: str) -> tuple[str, str]:
    """The two levels a run is scored at: every frame, and its unit (patient or item)."""
    if unit not in LEVEL_KEYS:
        raise ValueError(f"a scored unit is patient or item, not {unit!r}")
    return (IMAGE, unit)


def at_level(table: pd.DataFrame, labels: Sequence[str], level: str, pooling: str = "mean", k: int = 3) -> pd.DataFrame:
    """Frames as they are (``image``), or pooled per patient or item."""
    return table if level == IMAGE else aggregate(table, labels, LEVEL_KEYS[level], pooling, k)


def base_question(labels: Sequence[str], settings: EvaluateSettings) -> Question:
    unknown = sorted(set(settings.positive) - set(labels))
    if unknown:
        raise ValueError(f"evaluate.positive {unknown} are not among the labels {list(labels)}")
    if set(settings.positive) == set(labels):
        raise ValueError("evaluate.positive names every label: nothing would be negative")
    return Question(tuple(labels), tuple(settings.positive))


def questions_by_level(validation: pd.DataFrame, labels: Sequence[str], settings: EvaluateSettings,
                       unit: str = "patient", pooling: str | None = None) -> dict[str, Question]:
    """The question per level, a binary one with its Youden threshold from the pooled validation
    folds (pooled per unit with ``pooling``, by default the headline's)."""
    question = base_question(labels, settings)
    pooling = pooling or settings.pooling[0]
    out = {}
    for level in levels_of(unit):
        if question.binary:
            table = at_level(validation, labels, level, pooling, settings.topk)
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
    parts: dict[str, pd.DataFrame] = field(default_factory=dict)  # part -> frame-level predictions (calibrated)
    uncalibrated: dict[str, pd.DataFrame] = field(default_factory=dict)  # the same before temperature scaling
    unit: str = "patient"  # the level beside image: patient or item
    temperature: float = 1.0
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)  # ECE and NLL before and after, per part and level
    pooling: pd.DataFrame = field(default_factory=pd.DataFrame)  # the pooling methods side by side at the unit level


def check_disjoint(val_tables: Sequence[pd.DataFrame], test_tables: Sequence[pd.DataFrame]) -> None:
    """Evaluation refuses predictions whose validation and test patients overlap, and folds whose
    validation patients overlap each other (out-of-fold predictions must be one per patient)."""
    test = sorted(set().union(*(set(t["patient_id"]) for t in test_tables))) if test_tables else []
    for first, second in itertools.combinations(range(len(val_tables)), 2):
        PatientPartition(train=(), val=sorted(set(val_tables[first]["patient_id"])),
                         test=sorted(set(val_tables[second]["patient_id"])))
    for table in val_tables:
        PatientPartition(train=(), val=sorted(set(table["patient_id"])), test=test)


def fold_table(val_tables: Sequence[pd.DataFrame], labels: Sequence[str], questions: Mapping[str, Question],
               pooling: str = "mean", k: int = 3) -> pd.DataFrame:
    """The ovarian study's layout: one row per validation fold, then mean and sd over folds."""
    rows = []
    for level in questions:
        per_fold = []
        for fold, table in enumerate(val_tables):
            values = classification_metrics(at_level(table, labels, level, pooling, k), questions[level])
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


def calibration_table(before: Mapping[str, pd.DataFrame], after: Mapping[str, pd.DataFrame], labels: Sequence[str],
                      settings: EvaluateSettings, unit: str, temperature: float) -> pd.DataFrame:
    """ECE (the reliability diagram's, see sonoflow.metrics.reliability) and the frames' NLL
    before and after temperature scaling, per part and level. On ``cv`` the temperature was fitted
    on these very predictions (``fitted_on_this_part``), so only ``test`` measures it out of sample."""
    question = base_question(labels, settings)
    rows = []
    for part in after:
        for level in levels_of(unit):
            pooled = {name: at_level(tables[part], labels, level, settings.pooling[0], settings.topk)
                      for name, tables in (("before", before), ("after", after))}
            # cv is the part the temperature was fitted on: its "after" is in-sample (one parameter).
            row = {"part": part, "level": level, "cases": len(pooled["after"]), "temperature": temperature,
                   "calibration": settings.calibration, "fitted_on_this_part": part == "cv"}
            for name, table in pooled.items():
                row[f"ece_{name}"] = expected_calibration_error(*reliability(table, question)[::-1],
                                                                settings.calibration_bins)
                if level == IMAGE:
                    row[f"nll_{name}"] = negative_log_likelihood(log_probabilities(table, labels),
                                                                 class_indices(table, labels), 1.0)
            rows.append(row)
    return pd.DataFrame(rows)


def pooling_table(parts: Mapping[str, pd.DataFrame], validation: pd.DataFrame, labels: Sequence[str],
                  settings: EvaluateSettings, unit: str) -> pd.DataFrame:
    """Every pooling method of ``settings.pooling`` side by side at the unit level, per part: AUC
    and accuracy (macro for multi-class) with their patient-bootstrap CIs, and the paired DeLong
    (per class, or the binary question's) and McNemar tests against the first method (the mean by
    default). A binary question's threshold is chosen on the validation folds per method."""
    question = base_question(labels, settings)
    first = settings.pooling[0]
    rows = []
    for part, table in parts.items():
        pooled = {method: at_level(table, labels, unit, method, settings.topk) for method in settings.pooling}
        questions = {method: questions_by_level(validation, labels, settings, unit, method)[unit]
                     for method in settings.pooling}
        tests = compare_cases(pooled, questions, labels, unit) if len(pooled) > 1 else pd.DataFrame()
        for method, cases in pooled.items():
            scored = with_confidence(cases, questions[method], settings.n_boot, settings.seed, settings.level)
            scored = scored[scored["class"].isin(["", "macro"])].drop_duplicates("metric").set_index("metric")
            row = {"part": part, "level": unit, "pooling": method, "k": settings.topk if method == "topk" else np.nan,
                   "patients": cases["patient_id"].nunique(), "cases": len(cases),
                   "threshold": questions[method].threshold}
            for metric in ("auc", "accuracy"):
                row[metric] = scored.at[metric, "value"]
                row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = scored.at[metric, "ci_low"], scored.at[metric, "ci_high"]
            if method != first and len(tests):
                against = tests[(tests["run_a"] == first) & (tests["run_b"] == method)]
                for test_row in against.itertuples(index=False):
                    row[f"delong_p_vs_{first}" + ("" if question.binary else f"_{test_row.target}")] = test_row.delong_p
                row[f"mcnemar_p_vs_{first}"] = against["mcnemar_p"].iloc[0] if len(against) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def with_attention(tables: Sequence[pd.DataFrame], weights: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each fold's prediction table with its frames' ``attention`` weights (rule attend's tables,
    same folds, same order); a frame without a weight is an error (the weights are stale)."""
    if len(tables) != len(weights):
        raise ValueError(f"{len(weights)} attention tables for {len(tables)} folds")
    out = []
    for table, weight in zip(tables, weights):
        keys = [key for key in ("shard", "row", "item_id", "frame_index") if key in table.columns and key in weight.columns]
        merged = table.merge(weight[keys + ["attention"]], on=keys, how="left", validate="one_to_one")
        missing = merged["attention"].isna()
        if missing.any():
            raise ValueError(f"{int(missing.sum())} frames have no attention weight (e.g. item "
                             f"{merged.loc[missing, 'item_id'].iloc[0]}); rerun rule attend")
        out.append(merged)
    return out


def evaluate_run(val_tables: Sequence[pd.DataFrame], test_tables: Sequence[pd.DataFrame], labels: Sequence[str],
                 settings: EvaluateSettings, unit: str | None = None) -> RunEvaluation:
    """Everything evaluate writes for one run; ``test_tables`` may be empty tables (no test set).

    Calibration first: with ``settings.calibration`` temperature, one temperature fitted on the
    pooled validation folds (never on test) rescales every fold's validation and test
    probabilities, before the fold ensemble; every figure, threshold and table after that is of
    the calibrated probabilities (ECE before and after in ``calibration``). ``unit``: patient or
    item (default: resolved from the labels, see sonoflow.split.resolve_unit)."""
    check_disjoint(val_tables, [t for t in test_tables if len(t)])
    raw_validation = pd.concat(val_tables, ignore_index=True)
    has_test = bool(test_tables) and all(len(t) for t in test_tables)
    if unit is None:
        every = pd.concat([raw_validation, *(test_tables if has_test else [])], ignore_index=True)
        unit, _ = resolve_unit(every, settings.unit)
    temperature = fit_temperature(raw_validation, labels) if settings.calibration == "temperature" else 1.0
    uncalibrated = {"cv": raw_validation}
    if has_test:
        uncalibrated["test"] = fold_ensemble(test_tables, labels)
    val_tables = [calibrate_table(table, labels, temperature) for table in val_tables]
    validation = pd.concat(val_tables, ignore_index=True)
    parts = {"cv": validation}
    if has_test:
        parts["test"] = fold_ensemble([calibrate_table(table, labels, temperature) for table in test_tables], labels)
    questions = questions_by_level(validation, labels, settings, unit)
    pooling, k = settings.pooling[0], settings.topk
    headline = []
    for (part, table), level in itertools.product(parts.items(), levels_of(unit)):
        cases = at_level(table, labels, level, pooling, k)
        scored = with_confidence(cases, questions[level], settings.n_boot, settings.seed, settings.level)
        headline.append(scored.assign(part=part, level=level, patients=table["patient_id"].nunique(), cases=len(cases)))
    columns = ["part", "level", "patients", "cases", "metric", "class", "value", "ci_low", "ci_high", "resamples",
               "undefined", "ci_method", "note"]
    return RunEvaluation(folds=fold_table(val_tables, labels, questions, pooling, k),
                         headline=pd.concat(headline, ignore_index=True)[columns],
                         thresholds={level: q.threshold for level, q in questions.items()}, parts=parts,
                         uncalibrated=uncalibrated, unit=unit, temperature=temperature,
                         calibration=calibration_table(uncalibrated, parts, labels, settings, unit, temperature),
                         pooling=pooling_table(parts, validation, labels, settings, unit))


# --- The part a run is shown by: its test patients, else its validation folds ---------------------------


def headline_part(tests: Sequence[pd.DataFrame]) -> str:
    """The part runs are shown and compared on: ``test`` (the held-out patients, fold ensemble)
    when every run's test predictions have rows, else ``cv`` (the pooled out-of-fold predictions)."""
    return "test" if all(len(table) for table in tests) else "cv"


def read_headline_predictions(tests: Sequence[str | os.PathLike],
                              cvs: Sequence[str | os.PathLike]) -> tuple[str, list[pd.DataFrame]]:
    """``headline_part`` and each run's predictions of it, from evaluate's predictions_test.csv
    files, else (read only then) its predictions_cv.csv files, one of each per run, in order."""
    tables = [read_predictions(path) for path in tests]
    part = headline_part(tables)
    return part, tables if part == "test" else [read_predictions(path) for path in cvs]


# --- The run's decision rule, as predict and compare read it ------------------------------------------


def decision_record(evaluation: RunEvaluation, settings: EvaluateSettings, ece: Mapping) -> dict:
    """thresholds.json: what turns a run's frame probabilities into calls, so that predict and
    compare do exactly what evaluation did (read back with ``read_decision``)."""
    return {"thresholds": evaluation.thresholds, "ece": dict(ece), "positive": list(settings.positive),
            "unit": evaluation.unit, "temperature": evaluation.temperature, "calibration": settings.calibration,
            "pooling": settings.pooling[0], "topk": settings.topk}


def decision_problem(decision) -> str | None:
    """What keeps ``decision`` from being a thresholds.json record (``thresholds``: level -> value;
    ``positive`` a list when present), or None."""
    if not isinstance(decision, Mapping):
        return f"a {type(decision).__name__}, not an object"
    if "thresholds" not in decision:
        return "no 'thresholds'"
    if not isinstance(decision["thresholds"], Mapping):
        return "'thresholds' is not an object of level -> threshold"
    if not isinstance(decision.get("positive") or [], (list, tuple)):
        return "'positive' is not a list of labels"
    return None


def write_decision(path: str | os.PathLike, decision: Mapping) -> None:
    """Write a run's thresholds.json (``decision_record``); read back with ``read_decision``."""
    problem = decision_problem(decision)
    if problem:
        raise ValueError(f"not a decision record, not written to {path}: {problem}")
    save_json(path, dict(decision))


def read_decision(path: str | os.PathLike) -> dict:
    """A run's thresholds.json with defaults for files written before calibration and pooling; a
    file that is not one is a ``FileFormatError`` naming it."""
    saved = read_json_object(path, "a thresholds file")
    problem = decision_problem(saved)
    if problem:
        raise FileFormatError(f"{path} is not a thresholds file: {problem}")
    return {"thresholds": saved["thresholds"], "positive": tuple(saved.get("positive") or ()),
            "unit": saved.get("unit", "patient"), "temperature": float(saved.get("temperature", 1.0)),
            "calibration": saved.get("calibration", "none"), "pooling": saved.get("pooling", "mean"),
            "topk": int(saved.get("topk", 3)), "ece": saved.get("ece", {})}


# --- Comparing runs ------------------------------------------------------------------------------------


def compare_runs(runs: Mapping[str, pd.DataFrame], labels: Sequence[str], settings: EvaluateSettings,
                 thresholds: Mapping[str, float | None] | None = None, level: str = "patient") -> pd.DataFrame:
    """Paired tests between every two runs on the same cases (``runs``: name -> predictions of
    one part): DeLong for the AUCs (per class one-vs-rest, or of the binary question) and exact
    McNemar for the calls. At patient level by default: DeLong and McNemar assume independent
    cases, which frames of one patient are not."""
    question = base_question(labels, settings)
    tables = {name: at_level(table, labels, level, settings.pooling[0], settings.topk) for name, table in runs.items()}
    questions = {name: Question(question.labels, question.positive, (thresholds or {}).get(name)) for name in runs}
    return compare_cases(tables, questions, labels, level)


def compare_cases(tables: Mapping[str, pd.DataFrame], questions: Mapping[str, Question], labels: Sequence[str],
                  level: str) -> pd.DataFrame:
    """Paired DeLong and McNemar tests between every two tables of the same cases (already at
    ``level``), each scored by its own question (threshold)."""
    keys = ["patient_id", "item_id", "frame_index"] if level == IMAGE else ["patient_id"] + (
        [LEVEL_KEYS[level]] if level != "patient" else [])
    tables = {name: table.sort_values(keys) for name, table in tables.items()}
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(tables.items(), 2):
        if not a[keys].reset_index(drop=True).equals(b[keys].reset_index(drop=True)):
            raise ValueError(f"{name_a} and {name_b} predicted different cases; they cannot be compared")
        q_a, q_b = questions[name_a], questions[name_b]
        target = q_a.target(a)
        targets = {"positive": (target, q_a.score(a), q_b.score(b))} if q_a.binary else {
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
    pooled (the run's first pooling method) per item or patient, whichever key the reader table uses.
    """
    key = "item_id" if "item_id" in readers.columns else "patient_id"
    question = Question(tuple(labels), tuple(settings.positive), threshold)
    model_cases = aggregate(model, labels, key, settings.pooling[0], settings.topk).set_index(key)
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
