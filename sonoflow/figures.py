"""Every figure sonoflow draws, and its one colour convention.

Evaluation figures (ROC and PR curves at image and patient level, confusion matrices,
calibration, training curves, run comparisons), Grad-CAM overlays (of a run's examples, and of
the predicted class of new cases), U-Net segmentation overlays, near-duplicate pairs and the
audit's marked frames. The modules that compute what is drawn return data; the scripts draw it
here. Curves come from scikit-learn (roc_curve, precision_recall_curve);
figures are matplotlib PNGs written atomically.

Colour convention, everywhere (ingest previews, segmentation and Grad-CAM overlays): the ground
truth lesion outline is GROUND_TRUTH (green), the U-Net's is UNET (magenta), both smoothed and
drawn over a thin dark halo so that they stay visible on B-mode and on a heatmap. matplotlib and
scikit-learn are imported where a figure is drawn, so that the ingest stage (no matplotlib in its
environment) can read the colours.
"""

from __future__ import annotations

import json
import os
import textwrap
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sonoflow.metrics import Question, expected_calibration_error, reliability

GROUND_TRUTH = "#2ee66b"  # lesion outline from a ground-truth mask
UNET = "#ff3ed2"  # lesion outline from the U-Net's predicted mask
OUTLINE_NAMES = {"truth": "lesion, ground truth", "unet": "lesion, U-Net"}
OUTLINE_COLOURS = {"truth": GROUND_TRUTH, "unet": UNET}
CAM_COLORMAP = "jet"
CAM_MAX_ALPHA = 0.6  # the heat's opacity at its maximum; where the CAM is low the B-mode shows through
WRONG = "#b00020"  # text of a wrong call
# Burned-in marks found by the audit (sonoflow.audit.KINDS), boxed in marks_figure
MARK_COLOURS = {"cross": "red", "line": "orange", "dots": "yellow", "text": "cyan", "colour": "magenta"}
DPI = 110
GRID = np.linspace(0, 1, 101)


def bgr(colour: str) -> tuple[int, int, int]:
    """A '#rrggbb' colour as OpenCV's (blue, green, red)."""
    red, green, blue = (int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return blue, green, red


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike) -> None:
    from sonoflow.io import atomic_path

    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")
    pyplot().close(figure)


# --- Lesion outlines and heatmaps ---------------------------------------------------------------------


def draw_outline(axis, mask: np.ndarray, colour: str, width: float = 1.4) -> None:
    """The outline of a binary mask, smoothed (a contour of the Gaussian-blurred mask, not the
    pixel staircase), over a dark halo."""
    from matplotlib import patheffects
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if not mask.any():
        return
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), sigma=max(1.0, mask.shape[0] / 96))
    contours = axis.contour(smooth, levels=[0.5], colors=[colour], linewidths=width)
    contours.set(path_effects=[patheffects.withStroke(linewidth=width + 1.6, foreground="black", alpha=0.55)])


def outline_legend(figure, kinds: Sequence[str], **where) -> None:
    from matplotlib.lines import Line2D

    kinds = [kind for kind in OUTLINE_NAMES if kind in set(kinds)]
    if kinds:
        handles = [Line2D([], [], color=OUTLINE_COLOURS[kind], lw=2) for kind in kinds]
        figure.legend(handles, [OUTLINE_NAMES[kind] for kind in kinds], fontsize=8, frameon=False,
                      **({"loc": "lower center", "ncol": len(kinds)} | where))


def cam_panel(axis, frame: np.ndarray, cam: np.ndarray, outlines: Sequence[tuple[np.ndarray, str]] = ()) -> None:
    """A B-mode frame in grey with the CAM over it: its colour from CAM_COLORMAP, its opacity
    growing with the heat up to CAM_MAX_ALPHA, so the anatomy stays visible; then the outlines
    ((mask, 'truth' or 'unet'))."""
    plt = pyplot()
    cam = np.clip(np.nan_to_num(np.asarray(cam, np.float32)), 0, 1)
    heat = plt.get_cmap(CAM_COLORMAP)(cam)
    heat[..., 3] = CAM_MAX_ALPHA * cam
    axis.imshow(frame, cmap="gray", vmin=0, vmax=255)
    axis.imshow(heat)
    for mask, kind in outlines:
        draw_outline(axis, mask, OUTLINE_COLOURS[kind])
    axis.set_xticks([])
    axis.set_yticks([])


def cam_colorbar(figure, axes) -> None:
    from matplotlib import cm, colors

    mappable = cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap=CAM_COLORMAP)
    bar = figure.colorbar(mappable, ax=axes, shrink=0.6, fraction=0.03, pad=0.02)
    bar.set_label(f"CAM (0-1; opacity up to {CAM_MAX_ALPHA:.0%})", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _short(text: str, width: int = 24) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def cam_overlay_figure(path, frames: np.ndarray, cams: np.ndarray, lesions: np.ndarray | None,
                       lesion_sources: Sequence[str] | None, examples: pd.DataFrame, labels: Sequence[str],
                       title: str) -> None:
    """One row per true class: the chosen frames with the CAM of the predicted class over them,
    each panel titled with its patient and item id, the kind of example, true -> predicted label
    and its probability (wrong calls in red); lesion outlines in the colour of their source
    ('truth' or 'unet', ``lesion_sources[i]``); one colour bar for the heat."""
    plt = pyplot()
    classes = [label for label in labels if (examples["label"] == label).any()]
    columns = max(1, int(examples.groupby("label").size().max())) if len(examples) else 1
    rows = max(1, len(classes))
    figure, axes = plt.subplots(rows, columns, figsize=(2.5 * columns + 1.2, 2.9 * rows + 0.8), squeeze=False,
                                layout="constrained")
    for axis in axes.ravel():
        axis.axis("off")
    kinds = set()
    for r, label in enumerate(classes):
        for c, (index, row) in enumerate(examples[examples["label"] == label].iterrows()):
            axis = axes[r, c]
            axis.axis("on")
            outlines = []
            if lesions is not None and lesions[index].any():
                kind = lesion_sources[index] if lesion_sources is not None else "truth"
                outlines.append((lesions[index], kind))
                kinds.add(kind)
            cam_panel(axis, frames[index], cams[index], outlines)
            right = row["predicted"] == label
            axis.set_title(f"{_short(row['patient_id'], 14)} / {_short(row['item_id'])}\n{row['kind']}: {_short(label)}\n"
                           f"→ {_short(row['predicted'])} {row['confidence']:.2f}" + ("" if right else " ✗"),
                           fontsize=7, color="black" if right else WRONG)
    cam_colorbar(figure, axes)
    outline_legend(figure, sorted(kinds), loc="outside lower center")
    figure.suptitle(textwrap.fill(title, 90), fontsize=9)
    save_figure(figure, path)


def segmentation_overlay_figure(path, frames: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                                table: pd.DataFrame, per_class: int = 4) -> None:
    """A grid per class of held-out frames with the ground truth and the U-Net's lesion outline,
    each panel titled with patient, item and Dice."""
    plt = pyplot()
    labels = sorted(table["label"].unique())
    columns = max(1, min(per_class, int(table.groupby("label").size().max())))
    figure, axes = plt.subplots(len(labels), columns, figsize=(2.4 * columns, 2.6 * len(labels) + 0.6), squeeze=False,
                                layout="constrained")
    for axis in axes.ravel():
        axis.axis("off")
    for r, label in enumerate(labels):
        chosen = table.index[table["label"] == label][:columns]
        for c, index in enumerate(chosen):
            axis = axes[r, c]
            axis.imshow(frames[index], cmap="gray", vmin=0, vmax=255)
            draw_outline(axis, truth[index], GROUND_TRUTH)
            draw_outline(axis, predicted[index], UNET)
            patient = f"{_short(table.at[index, 'patient_id'], 14)} / " if "patient_id" in table else ""
            axis.set_title(f"{label}\n{patient}{_short(table.at[index, 'item_id'])}\nDice {table.at[index, 'dice']:.2f}",
                           fontsize=7)
    outline_legend(figure, ["truth", "unet"], loc="outside lower center")
    figure.suptitle("held-out patients: lesion outlines", fontsize=9)
    save_figure(figure, path)


def cam_overlay_figures(paths: Mapping[str, str | os.PathLike], overlays, labels: Sequence[str], title: str) -> None:
    """One cam_overlay_figure per CAM method (``paths``: method -> PNG) of a run's overlays
    (``overlays``: sonoflow.cam.CamOverlays), titled with the method and whose CAM is drawn."""
    whose = "fold ensemble on test" if overlays.ensemble else "each frame by its fold"
    for method, path in paths.items():
        cam_overlay_figure(path, overlays.images, overlays.cams[method], overlays.lesions, overlays.sources,
                           overlays.examples, labels, f"{title}: {method}, {whose}")


def prediction_overlay_figure(path, blends: np.ndarray, shown: pd.DataFrame, title: str) -> None:
    """The chosen frame of each item blended with the ensemble's CAM for its predicted class
    (``blends``: sonoflow.predict.cam_blends, RGB uint8; ``shown``: sonoflow.predict.representative_frames).
    The blend is made where Grad-CAM lives, so that this module (which ingest imports) needs no
    pytorch-grad-cam."""
    plt = pyplot()
    columns = min(4, max(1, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 3.1 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, blend, row in zip(axes.ravel(), blends, shown.itertuples(index=False)):
        axis.imshow(blend)
        call = f" ({row.item_call})" if row.item_call else ""
        axis.set_title(f"{row.patient_id} / {row.item_id}\n→ {row.item_predicted} {row.item_probability:.2f}{call}",
                       fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def pairs_figure(path, pairs: pd.DataFrame, store, max_pairs: int = 12,
                 title: str = "near-duplicate pairs (different labels first, then different patients)",
                 empty: str = "no near-duplicate pairs") -> None:
    """Thumbnails of near-duplicate pairs side by side, for people to check: pairs with different
    labels first (a label conflict: shaded red and said so), then those across patients."""
    plt = pyplot()
    shown = pairs.assign(different_labels=pairs["label_a"] != pairs["label_b"]) if len(pairs) else pairs
    if len(shown):
        shown = shown.sort_values(["different_labels", "crosses_patients", "correlation"], ascending=False,
                                  kind="stable").head(max_pairs)
    rows = max(1, len(shown))
    figure = plt.figure(figsize=(5.2, 2.9 * rows + 0.4), layout="constrained")
    figure.suptitle(title, fontsize=9)
    if shown.empty:
        figure.text(0.5, 0.5, empty, ha="center", fontsize=9)
        save_figure(figure, path)
        return
    for sub, pair in zip(np.atleast_1d(figure.subfigures(rows, 1)), shown.itertuples()):
        notes = [f"correlation {pair.correlation:.2f}"]
        if pair.crosses_patients:
            notes.append("different patients")
        if pair.different_labels:
            notes.append(f"DIFFERENT LABELS: {pair.label_a} vs {pair.label_b}")
            sub.set_facecolor("#fde7ea")
        sub.suptitle(" · ".join(notes), fontsize=8, color=WRONG if pair.different_labels else "black")
        axes = sub.subplots(1, 2)
        for axis, side in zip(axes, "ab"):
            frame = store.gather(pd.DataFrame({"shard": [getattr(pair, f"shard_{side}")],
                                               "row": [getattr(pair, f"row_{side}")]}))[0]
            axis.imshow(frame, cmap="gray", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{_short(getattr(pair, f'item_{side}'), 20)}\n{_short(getattr(pair, f'patient_{side}'), 14)}"
                           f" · {getattr(pair, f'label_{side}')}", fontsize=7)
    save_figure(figure, path)


def marks_figure(path, marks: pd.DataFrame, store, max_frames: int = 12) -> None:
    """Marked frames with their mark boxes drawn (most marks first), for people to check
    (``marks``: sonoflow.audit.read_marks' table)."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    shown = marks[marks["count"] > 0].sort_values(["count", "shard", "row"], ascending=[False, True, True]).head(max_frames)
    columns = 4
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    if shown.empty:
        axes[0, 0].text(0, 0.5, "no marked frames", fontsize=9)
    for axis, mark in zip(axes.ravel(), shown.itertuples()):
        frame = store.gather(pd.DataFrame({"shard": [mark.shard], "row": [mark.row]}))[0]
        axis.imshow(frame, cmap="gray", vmin=0, vmax=255)
        for kind, y0, y1, x0, x1 in json.loads(mark.boxes):
            axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1, color=MARK_COLOURS[kind]))
        axis.set_title(f"{mark.item_id} ({mark.label})\n{mark.kinds}", fontsize=6)
    figure.suptitle("frames with burned-in marks (red cross, orange line, yellow dots, cyan text, magenta colour)",
                    fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def attention_figure(path, examples: Sequence, title: str, max_frames: int = 8) -> None:
    """The frames each shown unit's decision leaned on: one row per unit (``examples``:
    sonoflow.attention.FoldAttention.examples), its frames heaviest first with their weights."""
    plt = pyplot()
    columns = max([min(len(frames), max_frames) for _, _, frames in examples], default=1)
    rows = max(1, len(examples))
    figure, axes = plt.subplots(rows, columns, figsize=(1.7 * columns + 0.6, 1.9 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    if not examples:
        axes[0, 0].text(0, 0.5, "no validation unit with several frames", fontsize=8)
    for row, (unit_id, label, frames) in enumerate(examples):
        for column, (frame, weight) in enumerate(frames[:max_frames]):
            axis = axes[row, column]
            axis.imshow(frame, cmap="gray", vmin=0, vmax=255)
            axis.set_title(f"{_short(unit_id, 18)} ({label})\nweight {weight:.2f}" if column == 0 else
                           f"weight {weight:.2f}", fontsize=6)
    figure.suptitle(textwrap.fill(title, 110), fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


# --- Evaluation curves ----------------------------------------------------------------------------------


def _targets(question, table: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, binary target, score) per curve: one per class, or the binary question's one."""
    target, score = question.target(table), question.score(table)
    if question.binary:
        return [("positive: " + "+".join(question.positive), target, score)]
    return [(label, (target == k).astype(int), score[:, k]) for k, label in enumerate(question.labels)]


def _panels(n: int, columns: int | None = None):
    plt = pyplot()
    columns = columns or min(n, 2)
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.2 * rows + 0.4), squeeze=False,
                                layout="constrained")
    for axis in axes.ravel()[n:]:
        axis.axis("off")
    return figure, axes.ravel()


def _curve(kind: str, target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    if kind == "roc":
        fpr, tpr, _ = roc_curve(target, score)
        return fpr, tpr, float(auc(fpr, tpr))
    precision, recall, _ = precision_recall_curve(target, score)
    order = np.argsort(recall)  # np.interp needs increasing x
    return recall[order], precision[order], float(auc(recall, precision))


def _curve_panel(axis, kind: str, index: int, folds: Sequence[pd.DataFrame], ensemble: pd.DataFrame | None,
                 question, title: str) -> None:
    curves, areas = [], []
    for fold, table in enumerate(folds):
        _, target, score = _targets(question, table)[index]
        if len(np.unique(target)) < 2:
            continue
        x, y, area = _curve(kind, target, score)
        axis.plot(x, y, lw=0.9, alpha=0.5, label=f"fold {fold} ({area:.2f})")
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
    axis.set(xlim=(0, 1), ylim=(0, 1.02))
    axis.set_title(title, fontsize=10)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left", framealpha=0.85)


def curve_figure(path, kind: str, levels: Mapping[str, tuple[Sequence[pd.DataFrame], pd.DataFrame | None, object]],
                 title: str) -> None:
    """ROC (``kind='roc'``) or precision-recall curves: one row per class (one row for a binary
    question), one column per level (``levels``: level -> (validation folds, test ensemble or
    None, question) at that level), so image- and patient-level curves sit side by side. Each
    panel: every validation fold (thin), their mean with a +-1 sd band, and the test fold
    ensemble (dashed) when there is one; areas in the legend."""
    names = [name for name, _, _ in _targets(next(iter(levels.values()))[2], next(iter(levels.values()))[0][0])]
    figure, axes = _panels(len(names) * len(levels), columns=len(levels))
    for row, name in enumerate(names):
        for column, (level, (folds, ensemble, question)) in enumerate(levels.items()):
            _curve_panel(axes[row * len(levels) + column], kind, row, folds, ensemble, question, f"{name} · {level} level")
    figure.suptitle(title, fontsize=11)
    save_figure(figure, path)


def comparison_figure(path, runs: Mapping[str, pd.DataFrame], question, title: str) -> None:
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
        axis.legend(fontsize=8, loc="lower right", framealpha=0.85)
    figure.suptitle(textwrap.fill(title, 70), fontsize=10)
    save_figure(figure, path)


def interval_figure(path, table: pd.DataFrame, title: str) -> None:
    """AUC of every run with its 95% CI, one row per run, per level (a forest plot)."""
    plt = pyplot()
    levels = list(dict.fromkeys(table["level"]))
    figure, axes = plt.subplots(1, len(levels), figsize=(4.6 * len(levels), 0.5 * table["run"].nunique() + 1.6),
                                squeeze=False, layout="constrained")
    for axis, level in zip(axes.ravel(), levels):
        rows = table[table["level"] == level].iloc[::-1]
        y = np.arange(len(rows))
        errors = np.vstack([rows["auc"] - rows["auc_ci_low"], rows["auc_ci_high"] - rows["auc"]]).clip(min=0)
        axis.errorbar(rows["auc"], y, xerr=errors, fmt="o", color="tab:blue", capsize=3)
        axis.axvline(0.5, color="grey", lw=0.6, ls=":")
        axis.set_yticks(y, [f"{run} {auc:.3f}" for run, auc in zip(rows["run"], rows["auc"])], fontsize=8)
        axis.set(title=f"{level} level", xlabel="AUC (95% CI)", xlim=(0, 1.02))
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


def confusion_figure(path, tables: Mapping[str, tuple[pd.DataFrame, object]], title: str) -> None:
    """Counts and row-normalised confusion matrices, one pair per (table, question), e.g. per level
    (a binary question's threshold differs between levels)."""
    from sklearn.metrics import confusion_matrix

    plt = pyplot()
    figure, axes = plt.subplots(len(tables), 2, figsize=(4.4 * 2, 4.0 * len(tables)), squeeze=False, layout="constrained")
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
            axis.set_xticks(range(len(classes)), classes, rotation=35, ha="right", fontsize=8)
            axis.set_yticks(range(len(classes)), classes, fontsize=8)
            axis.set(xlabel="predicted", ylabel="true", title=f"{name}: {label}")
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


def count_labels(edges: np.ndarray, which: np.ndarray) -> list[tuple[float, str]]:
    """(x, text) of each non-empty bin's case count, at the bin's centre: drawn along the bottom
    of the axes, inside them, one per bin, so that no two overlap however close the points are."""
    counts = np.bincount(which, minlength=len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return [(float(x), str(int(n))) for x, n in zip(centres, counts) if n]


def _reliability_axes(question: Question) -> tuple[str, str]:
    if question.binary:
        return "predicted probability of positive", "observed share positive"
    return "confidence of the predicted class", "accuracy"


def calibration_figure(path, before: Mapping[str, pd.DataFrame], after: Mapping[str, pd.DataFrame],
                       question: Question, bins: int, title: str, temperature: float) -> dict:
    """Reliability diagrams (the binary question's positive score, or the top-class confidence of
    a multi-class call) before (grey) and after (blue) temperature scaling, one panel per table
    (e.g. per level), the ECE of each in the legend and each bin's case count along the bottom,
    inside the axes; returns {name: {before, after}}."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(after), figsize=(4.4 * len(after), 4.2), squeeze=False, layout="constrained")
    edges = np.linspace(0, 1, bins + 1)
    errors = {}
    for axis, name in zip(axes[0], after):
        errors[name] = {}
        for which, tables, style in (("before", before, dict(color="grey", ls="--", marker="s")),
                                     ("after", after, dict(color="tab:blue", marker="o"))):
            confidence, outcome = reliability(tables[name], question)
            errors[name][which] = expected_calibration_error(outcome, confidence, bins)
            in_bin = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
            points = [(confidence[in_bin == b].mean(), outcome[in_bin == b].mean()) for b in range(bins)
                      if (in_bin == b).any()]
            label = "uncalibrated" if which == "before" else f"temperature {temperature:.2f}"
            axis.plot(*zip(*points), label=f"{label}: ECE {errors[name][which]:.3f}", **style)
            if which == "after":
                for x, text in count_labels(edges, in_bin):
                    axis.text(x, 0.015, text, fontsize=7, ha="center", va="bottom", color="#444")
        axis.text(0.01, 0.075, "n per bin:", fontsize=7, ha="left", va="bottom", color="#444")
        xlabel, ylabel = _reliability_axes(question)
        axis.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel, title=name)
        axis.legend(fontsize=7, loc="upper left")
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)
    return errors


def training_figure(path, histories: Sequence[pd.DataFrame], title: str) -> None:
    """Loss (training and validation) and validation AUC per epoch for every fold; the kept epoch
    marked; one legend below both panels, outside the curves."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    figure, (loss_axis, auc_axis) = plt.subplots(1, 2, figsize=(9.5, 4.2), layout="constrained")
    handles = []
    for fold, history in enumerate(histories):
        line = loss_axis.plot(history["epoch"], history["val_loss"])[0]
        loss_axis.plot(history["epoch"], history["train_loss"], ls="--", color=line.get_color(), alpha=0.6)
        best = history[history["best"].astype(str).str.lower() == "true"]
        loss_axis.scatter(best["epoch"], best["val_loss"], color=line.get_color(), marker="*", s=80, zorder=3)
        if "val_auc" in history:
            auc_axis.plot(history["epoch"], history["val_auc"], color=line.get_color())
        handles.append(Line2D([], [], color=line.get_color(), lw=2, label=f"fold {fold}"))
    handles += [Line2D([], [], color="grey", lw=1.5, label="validation"),
                Line2D([], [], color="grey", lw=1.5, ls="--", label="training"),
                Line2D([], [], color="grey", marker="*", ls="", markersize=10, label="kept epoch")]
    from matplotlib.ticker import MaxNLocator

    for axis in (loss_axis, auc_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    auc_axis.set(xlabel="epoch", ylabel="validation AUC", title="validation AUC", ylim=(0, 1.02))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)


def run_figures(paths: Mapping[str, str | os.PathLike], evaluation, val_tables: Sequence[pd.DataFrame],
                histories: Sequence[pd.DataFrame], labels: Sequence[str], settings, title: str) -> dict:
    """Every figure of one evaluated run (``evaluation``: sonoflow.evaluate.RunEvaluation).

    Curves per fold and of the test ensemble at image and patient level side by side; confusion
    matrices and calibration of the headline part (test when there is one, else the pooled
    validation folds) at both levels (calibration: before and after temperature scaling). Returns
    the ECE per level, before and after.
    """
    from sonoflow.evaluate import at_level, base_question

    question = base_question(labels, settings)
    by_level = {level: Question(question.labels, question.positive, threshold)
                for level, threshold in evaluation.thresholds.items()}
    part = "test" if "test" in evaluation.parts else "cv"

    def pooled_level(table, level):
        return at_level(table, labels, level, settings.pooling[0], settings.topk)

    def pooled(table):
        return {level: pooled_level(table, level) for level in by_level}

    headline = pooled(evaluation.parts[part])
    ensemble = evaluation.parts.get("test")
    curves = {level: ([pooled_level(table, level) for table in val_tables],
                      pooled_level(ensemble, level) if ensemble is not None else None, by_level[level])
              for level in by_level}
    curve_figure(paths["roc"], "roc", curves, f"{title}: ROC")
    curve_figure(paths["pr"], "pr", curves, f"{title}: precision-recall")
    confusion_figure(paths["confusion"], {f"{level} level": (table, by_level[level]) for level, table in headline.items()},
                     f"{title}: confusion on {part}")
    before = pooled(evaluation.uncalibrated.get(part, evaluation.parts[part]))
    errors = calibration_figure(
        paths["calibration"], {f"{level} level": table for level, table in before.items()},
        {f"{level} level": table for level, table in headline.items()}, question, settings.calibration_bins,
        f"{title}: calibration on {part}", evaluation.temperature)
    training_figure(paths["training"], histories, f"{title}: training")
    return errors
