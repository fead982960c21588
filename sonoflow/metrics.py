"""Classification metrics on prediction tables (one row per frame, prob_<class> columns)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"shard": str, "patient_id": str, "item_id": str, "label": str}, keep_default_na=False)


def probabilities(table: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    return table[[f"prob_{name}" for name in labels]].to_numpy(dtype=np.float64)


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary AUC, or macro one-vs-rest AUC; NaN when a class is missing from y_true."""
    if len(np.unique(y_true)) < probs.shape[1]:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro"))


def summarise(table: pd.DataFrame, labels: Sequence[str]) -> dict:
    index = {name: i for i, name in enumerate(labels)}
    y_true = table["label"].map(index).to_numpy()
    probs = probabilities(table, labels)
    y_pred = probs.argmax(1)
    return {"frames": len(table), "patients": table["patient_id"].nunique(), "auc": macro_auc(y_true, probs),
            "accuracy": accuracy_score(y_true, y_pred), "balanced_accuracy": balanced_accuracy_score(y_true, y_pred)}


def fold_ensemble(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """Mean of the folds' probabilities per test frame (every fold predicts the same test frames)."""
    keys = ["shard", "row", "patient_id", "item_id", "frame_index", "label"]
    columns = [f"prob_{name}" for name in labels]
    stacked = pd.concat(tables, ignore_index=True)
    ensemble = stacked.groupby(keys, sort=False, as_index=False)[columns].mean()
    counts = stacked.groupby(keys, sort=False).size().to_numpy()
    if not (counts == len(tables)).all():
        raise ValueError("folds predicted different test frames; cannot ensemble")
    ensemble["predicted"] = [labels[i] for i in ensemble[columns].to_numpy().argmax(1)]
    return ensemble


def fold_summary(val_tables: Sequence[pd.DataFrame], test_tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """Image-level figures per fold (validation and test) and for the fold ensemble on test."""
    rows = []
    for fold, (val, test) in enumerate(zip(val_tables, test_tables)):
        rows.append({"part": "val", "fold": str(fold), **summarise(val, labels)})
        if len(test):
            rows.append({"part": "test", "fold": str(fold), **summarise(test, labels)})
    if all(len(test) for test in test_tables):
        rows.append({"part": "test", "fold": "ensemble", **summarise(fold_ensemble(test_tables, labels), labels)})
    return pd.DataFrame(rows)
