"""Evaluation figures: ROC and PR curves, confusion matrices, calibration, training curves.

Curves come from scikit-learn (roc_curve, precision_recall_curve); figures are matplotlib PNGs
written atomically.
"""

from __future__ import annotations

import os
import textwrap
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve  # noqa: E402

from sonoflow.io import atomic_path  # noqa: E402
from sonoflow.metrics import Question, expected_calibration_error, reliability  # noqa: E402

GRID = np.linspace(0, 1, 101)


def save_figure(figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def _targets(question: Question, table: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, binary target, score) per curve: one per class, or the binary question's one."""
    target, score = question.target(table), question.score(table)
    if question.binary:
        return [("positive: " + "+".join(question.positive), target, score)]
    return [(label, (target == k).astype(int), score[:, k]) for k, label in enumerate(question.labels)]


def _panels(n: int):
    columns = min(n, 4)
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.4 * rows), squeeze=False)
    for axis in axes.ravel()[n:]:
        axis.axis("off")
    return figure, axes.ravel()


def curve_figure(path, kind: str, folds: Sequence[pd.DataFrame], ensemble: pd.DataFrame | None, question: Question,
                 title: str) -> None:
    """ROC (``kind='roc'``) or precision-recall curves per class: every validation fold (thin),
    their mean with a +-1 sd band, and the test fold ensemble (black) when there is one."""
    names = [name for name, _, _ in _targets(question, folds[0])]
    figure, axes = _panels(len(names))
    for index, name in enumerate(names):
        axis = axes[index]
        curves, areas = [], []
        for fold, table in enumerate(folds):
            _, target, score = _targets(question, table)[index]
            if len(np.unique(target)) < 2:
                continue
            x, y, area = _curve(kind, target, score)
            axis.plot(x, y, lw=0.8, alpha=0.45, label=f"fold {fold} ({area:.2f})")
            curves.append(np.interp(GRID, x, y))
            areas.append(area)
        if curves:
            mean, sd = np.mean(curves, axis=0), np.std(curves, axis=0)
            axis.plot(GRID, mean, color="tab:blue", lw=2, label=f"mean of folds ({np.mean(areas):.2f} ± {np.std(areas):.2f})")
            axis.fill_between(GRID, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), color="tab:blue", alpha=0.15)
        if ensemble is not None:
            _, target, score = _targets(question, ensemble)[index]
            if len(np.unique(target)) == 2:
                x, y, area = _curve(kind, target, score)
                axis.plot(x, y, color="black", lw=1.8, ls="--", label=f"test, fold ensemble ({area:.2f})")
        if kind == "roc":
            axis.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
            axis.set(xlabel="1 - specificity", ylabel="sensitivity")
        else:
            axis.set(xlabel="recall (sensitivity)", ylabel="precision")
        axis.set(title=name, xlim=(0, 1), ylim=(0, 1.02))
        axis.legend(fontsize=6, loc="lower right" if kind == "roc" else "lower left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def comparison_figure(path, runs: Mapping[str, pd.DataFrame], question: Question, title: str) -> None:
    """ROC curves of several runs on the same cases, one panel per class (one for a binary
    question), each run's AUC in the legend."""
    first = next(iter(runs.values()))
    names = [name for name, _, _ in _targets(question, first)]
    figure, axes = _panels(len(names))
    for index, name in enumerate(names):
        axis = axes[index]
        for run, table in runs.items():
            _, target, score = _targets(question, table)[index]
            if len(np.unique(target)) < 2:
                continue
            x, y, area = _curve("roc", target, score)
            axis.plot(x, y, lw=1.4, label=f"{run} ({area:.3f})")
        axis.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        axis.set(title=name, xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
        axis.legend(fontsize=6, loc="lower right")
    figure.suptitle(textwrap.fill(title, 48), fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def interval_figure(path, table: pd.DataFrame, title: str) -> None:
    """AUC of every run with its 95% CI, one row per run, per level (a forest plot)."""
    levels = list(dict.fromkeys(table["level"]))
    figure, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 0.5 * table["run"].nunique() + 1.4),
                                squeeze=False)
    for axis, level in zip(axes.ravel(), levels):
        rows = table[table["level"] == level].iloc[::-1]
        y = np.arange(len(rows))
        errors = np.vstack([rows["auc"] - rows["auc_ci_low"], rows["auc_ci_high"] - rows["auc"]]).clip(min=0)
        axis.errorbar(rows["auc"], y, xerr=errors, fmt="o", color="tab:blue", capsize=3)
        axis.axvline(0.5, color="grey", lw=0.6, ls=":")
        axis.set_yticks(y, [f"{run} {auc:.3f}" for run, auc in zip(rows["run"], rows["auc"])], fontsize=7)
        axis.set(title=f"{level} level", xlabel="AUC (95% CI)", xlim=(0, 1.02))
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def _curve(kind: str, target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    if kind == "roc":
        fpr, tpr, _ = roc_curve(target, score)
        return fpr, tpr, float(auc(fpr, tpr))
    precision, recall, _ = precision_recall_curve(target, score)
    order = np.argsort(recall)  # np.interp needs increasing x
    return recall[order], precision[order], float(auc(recall, precision))


def confusion_figure(path, tables: Mapping[str, tuple[pd.DataFrame, Question]], title: str) -> None:
    """Counts and row-normalised confusion matrices, one pair per (table, question), e.g. per level
    (a binary question's threshold differs between levels)."""
    figure, axes = plt.subplots(len(tables), 2, figsize=(4.2 * 2, 3.8 * len(tables)), squeeze=False)
    for row, (name, (table, question)) in enumerate(tables.items()):
        positive = "+".join(question.positive)
        classes = [f"not {positive}", positive] if question.binary else list(question.labels)
        matrix = confusion_matrix(question.target(table), question.predict(table), labels=list(range(len(classes))))
        with np.errstate(invalid="ignore"):
            normalised = matrix / matrix.sum(1, keepdims=True)
        for column, (values, fmt, label) in enumerate([(matrix, "d", "counts"), (normalised, ".2f", "row-normalised")]):
            axis = axes[row, column]
            axis.imshow(np.nan_to_num(normalised), cmap="Blues", vmin=0, vmax=1)
            for i, j in np.ndindex(values.shape):
                text = "-" if np.isnan(values[i, j]) else format(values[i, j], fmt)
                axis.text(j, i, text, ha="center", va="center", fontsize=8,
                          color="white" if np.nan_to_num(normalised[i, j]) > 0.6 else "black")
            axis.set_xticks(range(len(classes)), classes, rotation=35, ha="right", fontsize=7)
            axis.set_yticks(range(len(classes)), classes, fontsize=7)
            axis.set(xlabel="predicted", ylabel="true", title=f"{name}: {label}")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def calibration_figure(path, tables: Mapping[str, pd.DataFrame], question: Question, bins: int, title: str) -> dict:
    """Reliability diagrams (the binary question's positive score, or the top-class confidence of
    a multi-class call) with the ECE of each table; returns {name: ECE}."""
    figure, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 4), squeeze=False)
    errors = {}
    edges = np.linspace(0, 1, bins + 1)
    for axis, (name, table) in zip(axes[0], tables.items()):
        confidence, outcome = reliability(table, question)
        xlabel, ylabel = _reliability_axes(question)
        errors[name] = expected_calibration_error(outcome, confidence, bins)
        which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
        centres = [(confidence[which == b].mean(), outcome[which == b].mean(), (which == b).sum())
                   for b in range(bins) if (which == b).any()]
        x, y, n = map(np.array, zip(*centres))
        axis.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        axis.plot(x, y, marker="o", color="tab:blue")
        for xi, yi, ni in zip(x, y, n):
            axis.annotate(str(ni), (xi, yi), fontsize=6, textcoords="offset points", xytext=(3, -8))
        axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel, title=f"{name}: ECE {errors[name]:.3f}")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)
    return errors


def _reliability_axes(question: Question) -> tuple[str, str]:
    if question.binary:
        return "predicted probability of positive", "observed share positive"
    return "confidence of the predicted class", "accuracy"


def _reliability_curve(confidence: np.ndarray, outcome: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    """Per non-empty equal-width bin: mean confidence, mean outcome, count."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    centres = [(confidence[which == b].mean(), outcome[which == b].mean(), (which == b).sum())
               for b in range(bins) if (which == b).any()]
    return tuple(map(np.array, zip(*centres)))


def calibration_before_after_figure(path, before: Mapping[str, pd.DataFrame], after: Mapping[str, pd.DataFrame],
                                    question: Question, bins: int, title: str, temperature: float) -> dict:
    """Reliability diagrams before (grey) and after (blue) temperature scaling, one panel per
    table (e.g. per level), the ECE of each in the legend; returns {name: {before, after}}."""
    figure, axes = plt.subplots(1, len(after), figsize=(4.2 * len(after), 4), squeeze=False)
    errors = {}
    for axis, name in zip(axes[0], after):
        errors[name] = {}
        for which, tables, style in (("before", before, dict(color="grey", ls="--", marker="s")),
                                     ("after", after, dict(color="tab:blue", marker="o"))):
            confidence, outcome = reliability(tables[name], question)
            errors[name][which] = expected_calibration_error(outcome, confidence, bins)
            x, y, n = _reliability_curve(confidence, outcome, bins)
            label = "uncalibrated" if which == "before" else f"temperature {temperature:.2f}"
            axis.plot(x, y, label=f"{label}: ECE {errors[name][which]:.3f}", **style)
            if which == "after":
                for xi, yi, ni in zip(x, y, n):
                    axis.annotate(str(ni), (xi, yi), fontsize=6, textcoords="offset points", xytext=(3, -8))
        xlabel, ylabel = _reliability_axes(question)
        axis.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel, title=name)
        axis.legend(fontsize=7, loc="upper left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)
    return errors


def training_figure(path, histories: Sequence[pd.DataFrame], title: str) -> None:
    """Loss (training and validation) and validation AUC per epoch for every fold; the kept epoch marked."""
    figure, (loss_axis, auc_axis) = plt.subplots(1, 2, figsize=(9, 3.6))
    for fold, history in enumerate(histories):
        line = loss_axis.plot(history["epoch"], history["val_loss"], label=f"fold {fold} validation")[0]
        loss_axis.plot(history["epoch"], history["train_loss"], ls="--", color=line.get_color(), alpha=0.6)
        best = history[history["best"].astype(str).str.lower() == "true"]
        loss_axis.scatter(best["epoch"], best["val_loss"], color=line.get_color(), marker="*", s=80, zorder=3)
        if "val_auc" in history:
            auc_axis.plot(history["epoch"], history["val_auc"], color=line.get_color(), label=f"fold {fold}")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss (dashed: training; star: kept epoch)")
    auc_axis.set(xlabel="epoch", ylabel="validation AUC", title="validation AUC", ylim=(0, 1.02))
    loss_axis.legend(fontsize=7)
    auc_axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def run_figures(paths: Mapping[str, str | os.PathLike], evaluation, val_tables: Sequence[pd.DataFrame],
                histories: Sequence[pd.DataFrame], labels: Sequence[str], settings, title: str) -> dict:
    """Every figure of one evaluated run (``evaluation``: sonoflow.evaluate.RunEvaluation).

    Curves per fold and of the test ensemble at image level; confusion matrices and calibration
    of the headline part (test when there is one, else the pooled validation folds) at both
    levels (calibration: before and after temperature scaling). Returns the ECE per level, before and after.
    """
    from sonoflow.evaluate import at_level, base_question

    question = base_question(labels, settings)
    by_level = {level: Question(question.labels, question.positive, threshold)
                for level, threshold in evaluation.thresholds.items()}
    part = "test" if "test" in evaluation.parts else "cv"

    def pooled(table):
        return {level: at_level(table, labels, level, settings.pooling[0], settings.topk) for level in by_level}

    headline = pooled(evaluation.parts[part])
    ensemble = evaluation.parts.get("test")
    curve_figure(paths["roc"], "roc", val_tables, ensemble, by_level["image"], f"{title}: ROC (image level)")
    curve_figure(paths["pr"], "pr", val_tables, ensemble, by_level["image"], f"{title}: precision-recall (image level)")
    confusion_figure(paths["confusion"], {f"{level} level": (table, by_level[level]) for level, table in headline.items()},
                     f"{title}: confusion on {part}")
    before = pooled(evaluation.uncalibrated.get(part, evaluation.parts[part]))
    errors = calibration_before_after_figure(
        paths["calibration"], {f"{level} level": table for level, table in before.items()},
        {f"{level} level": table for level, table in headline.items()}, question, settings.calibration_bins,
        f"{title}: calibration on {part}", evaluation.temperature)
    training_figure(paths["training"], histories, f"{title}: training")
    return errors
