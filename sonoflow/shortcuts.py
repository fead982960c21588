"""The shortcut probe: can the label be guessed from what should not carry it?

Per frame, features that a lesion classifier should not need, in groups:

- ``size``: the source image's height, width, aspect ratio and pixel count;
- ``geometry``: the detected scan area (crop box) relative to the source, and the share of the
  ingested frame it fills;
- ``marks``: burned-in marks (sonoflow.audit) by kind, and the colour share from ingest;
- ``intensity``: grey levels of the scan outside the lesion (mean, spread, percentiles: gain,
  depth, dynamic range): on the frames with a lesion mask in the sheet when there are any (a
  frame without one would show its lesion), else on the whole scan of every frame;
- ``blanked``: only for frames with a lesion mask: the frame with the lesion (and a margin)
  blanked out, pooled to a 6x6 grid of mean grey levels: what the surroundings alone tell.

A small scikit-learn model (histogram gradient boosting) per group and for all groups but
``blanked`` together is cross-validated with folds grouped by patient; its out-of-fold scores give
an AUC (binary, or the macro one-vs-rest AUC of several classes) with a 95% CI from a bootstrap
over patients. The top features are those whose one-feature probe scores highest.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

log = logging.getLogger("sonoflow.shortcuts")

GROUPS = ("size", "geometry", "scanner", "marks", "intensity", "blanked")
COMBINED = "all but blanked"
GRID = 6
SHORTCUT_COLUMNS = ["group", "frames", "patients", "features", "auc", "ci_low", "ci_high", "top_features", "warning"]


def frame_features(frames: pd.DataFrame, arrays: np.ndarray, lesions: np.ndarray | None,
                   marks: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """Feature tables per group, indexed like ``frames`` (the frame table rows of ``arrays``,
    in the same order). ``lesions``: the lesion masks of the same frames (ingest's masks.npy),
    used where ``has_mask``; ``marks``: the audit's mark table (same order), or None."""
    frames = frames.reset_index(drop=True)
    height, width = frames["source_height"].astype(float), frames["source_width"].astype(float)
    groups = {"size": pd.DataFrame({"source_height": height, "source_width": width, "aspect": width / height,
                                    "megapixels": height * width / 1e6})}
    crop_h, crop_w = frames["crop_y1"] - frames["crop_y0"], frames["crop_x1"] - frames["crop_x0"]
    inside = arrays.reshape(len(arrays), -1) > 0
    groups["geometry"] = pd.DataFrame({"crop_height_share": crop_h / height, "crop_width_share": crop_w / width,
                                       "crop_aspect": crop_w / crop_h.clip(lower=1), "crop_top": frames["crop_y0"] / height,
                                       "crop_left": frames["crop_x0"] / width, "scan_fill": inside.mean(axis=1)})
    if marks is not None:
        marks = marks.reset_index(drop=True)
        groups["marks"] = marks[["count", "n_cross", "n_line", "n_dots", "n_text"]].astype(float).assign(
            colour=marks["colour"].astype(float))
    elif "colour" in frames:
        groups["marks"] = pd.DataFrame({"colour": frames["colour"].astype(float)})
    scanners = frames["scanner"].fillna("").astype(str) if "scanner" in frames else pd.Series("", index=frames.index)
    if scanners.nunique() > 1:  # the make and model in DICOM/EXIF headers, one column each ("" = not named)
        groups["scanner"] = pd.get_dummies(scanners.replace("", "(none)"), prefix="scanner", prefix_sep=": ",
                                           dtype=float)
    has_mask = frames["has_mask"].astype(str).str.lower().eq("true").to_numpy() if "has_mask" in frames else \
        np.zeros(len(frames), bool)
    rows, blanked = [], []
    kernel = np.ones((9, 9), np.uint8)
    # Outside the lesion needs a lesion mask: where some frames have one, only those are used (a
    # frame without one would show its lesion); with none at all, the whole scan.
    intensity_frames = np.flatnonzero(has_mask) if has_mask.any() else np.arange(len(frames))
    for i, frame in enumerate(arrays):
        frame = np.asarray(frame)
        lesion = cv2.dilate(np.asarray(lesions[i]), kernel).astype(bool) if lesions is not None and has_mask[i] \
            else np.zeros(frame.shape, bool)
        scan = (frame > 0) & ~lesion
        values = frame[scan].astype(np.float32) if scan.any() else np.zeros(1, np.float32)
        p10, p50, p90 = np.percentile(values, [10, 50, 90])
        rows.append({"frame": i, "mean_outside_lesion": values.mean(), "std_outside_lesion": values.std(), "p10": p10,
                     "p50": p50, "p90": p90, "top_half_mean": frame[: frame.shape[0] // 2][scan[: frame.shape[0] // 2]].mean()
                     if scan[: frame.shape[0] // 2].any() else 0.0})
        if has_mask[i]:
            filled = np.where(lesion, 0, frame).astype(np.float32)
            weight = cv2.resize((~lesion).astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA)
            pooled = cv2.resize(filled, (GRID, GRID), interpolation=cv2.INTER_AREA) / np.maximum(weight, 1e-3)
            blanked.append(pd.Series(pooled.ravel(), index=[f"cell_{k}" for k in range(GRID * GRID)], name=i))
    groups["intensity"] = pd.DataFrame(rows).set_index("frame").loc[intensity_frames].rename_axis(None)
    if blanked:
        groups["blanked"] = pd.DataFrame(blanked)
    return groups


def _auc(target: np.ndarray, scores: np.ndarray, n_classes: int, weight: np.ndarray | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(target[weight > 0] if weight is not None else target)
    if len(present) < 2:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(target, scores[:, 1], sample_weight=weight))
    if len(present) < n_classes:
        return float("nan")
    return float(roc_auc_score(target, scores, multi_class="ovr", average="macro", sample_weight=weight))


def _binary_auc_resamples(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted AUC of ``score`` for the boolean ``positive`` under each row of ``weights`` (B, n):
    the weighted share of (positive, negative) pairs ranked right, ties counting half (what
    sklearn's roc_auc_score computes with ``sample_weight``), for every resample at once. NaN where a
    resample has no positive or no negative weight."""
    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one group per distinct score
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each score
    pairs = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(1) / pairs, np.nan)


def auc_resamples(target: np.ndarray, scores: np.ndarray, n_classes: int, weights: np.ndarray) -> np.ndarray:
    """``_auc`` under each row of ``weights`` (B, n), vectorised: binary, or the macro one-vs-rest
    mean over classes (NaN where a resample lacks a class)."""
    weights = np.asarray(weights, float)
    if n_classes == 2:
        return _binary_auc_resamples(target == 1, scores[:, 1], weights)
    per_class = np.stack([_binary_auc_resamples(target == k, scores[:, k], weights) for k in range(n_classes)])
    return per_class.mean(0)  # NaN wherever one class is missing, as _auc


def out_of_fold(features: pd.DataFrame, target: np.ndarray, patients: np.ndarray, folds: int, seed: int,
                model: str = "boosting") -> np.ndarray:
    """Out-of-fold class probabilities of a probe, folds grouped by patient and stratified."""
    from sklearn.model_selection import StratifiedGroupKFold
    from threadpoolctl import threadpool_limits

    n_classes = int(target.max()) + 1
    scores = np.full((len(target), n_classes), np.nan)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    values = features.to_numpy(float)
    for train, test in splitter.split(values, target, patients):
        with threadpool_limits(1):  # a probe this small only loses time to OpenMP threads
            scores[test] = _fit_predict(model, values[train], target[train], values[test], n_classes, seed)
    return scores


def _fit_predict(model: str, x_train, y_train, x_test, n_classes: int, seed: int) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "boosting":
        # Leaves of at least 2 and at most 20 frames: a small data set still gets a probe that can split.
        probe = HistGradientBoostingClassifier(max_iter=60, max_depth=3, learning_rate=0.1,
                                               min_samples_leaf=int(np.clip(len(x_train) // 20, 2, 20)),
                                               class_weight="balanced", random_state=seed)
    else:
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, class_weight="balanced"))
    probe.fit(x_train, y_train)
    proba = np.zeros((len(x_test), n_classes))
    proba[:, probe.classes_] = probe.predict_proba(x_test)
    return proba


def probe_auc(features: pd.DataFrame, target: np.ndarray, patients: np.ndarray, n_classes: int, folds: int,
              n_boot: int, seed: int) -> tuple[float, float, float, np.ndarray]:
    """Cross-validated probe AUC with a 95% percentile CI from a bootstrap over patients."""
    from sonoflow.metrics import bootstrap_counts

    scores = out_of_fold(features, target, patients, folds, seed)
    auc = _auc(target, scores, n_classes)
    # Each resample draws patients with replacement; a drawn patient's frames enter as often.
    codes, unique = pd.factorize(pd.Series(patients))
    samples = auc_resamples(target, scores, n_classes, bootstrap_counts(len(unique), n_boot, seed)[:, codes])
    samples = samples[np.isfinite(samples)]
    low, high = np.quantile(samples, [0.025, 0.975]) if len(samples) >= 0.5 * n_boot else (np.nan, np.nan)
    return auc, float(low), float(high), scores


def top_features(features: pd.DataFrame, target: np.ndarray, patients: np.ndarray, n_classes: int, folds: int,
                 seed: int, shown: int = 3) -> list[tuple[str, float]]:
    """The features whose one-feature probe (logistic regression, same folds) scores highest."""
    scored = []
    for column in features.columns:
        if features[column].nunique() < 2:
            continue
        # A group joined from several (all but blanked) has gaps where a group covers fewer frames.
        values = features[[column]].fillna(features[column].median())
        scores = out_of_fold(values, target, patients, folds, seed, model="logistic")
        scored.append((column, _auc(target, scores, n_classes)))
    scored = [(name, auc) for name, auc in scored if np.isfinite(auc)]
    return sorted(scored, key=lambda item: -abs(item[1] - 0.5))[:shown]


def shortcut_probe(frames: pd.DataFrame, groups: Mapping[str, pd.DataFrame], labels: Sequence[str], folds: int = 5,
                   n_boot: int = 1000, warn: float = 0.65, seed: int = 0) -> pd.DataFrame:
    """One row per feature group (and all groups but ``blanked`` together): frames, patients,
    features, cross-validated probe AUC with its 95% CI, the top features, and a warning when the
    CI's lower bound is above ``warn``: a model could score that well without the lesion."""
    frames = frames.reset_index(drop=True)
    target_all = frames["label"].map({label: k for k, label in enumerate(labels)})
    if target_all.isna().any():
        raise ValueError(f"labels {sorted(set(frames['label'][target_all.isna()]))} are not among {list(labels)}")
    present = [label for label in labels if (frames["label"] == label).any()]
    n_classes = len(present)
    remap = {labels.index(label): k for k, label in enumerate(present)}
    target_all = target_all.map(remap).to_numpy(int)
    combined = pd.concat([groups[g] for g in GROUPS if g in groups and g != "blanked"], axis=1)
    rows = []
    for name, table in [*[(g, groups[g]) for g in GROUPS if g in groups], (COMBINED, combined)]:
        index = table.index.to_numpy()
        target, patients = target_all[index], frames["patient_id"].to_numpy()[index]
        row = {"group": name, "frames": len(index), "patients": len(set(patients)), "features": table.shape[1],
               "auc": np.nan, "ci_low": np.nan, "ci_high": np.nan, "top_features": "", "warning": ""}
        per_class = pd.Series(patients).groupby(target).nunique()
        k = min(folds, int(per_class.min()) if len(per_class) == n_classes else 0)
        if k < 2:
            row["warning"] = "too few patients per class to cross-validate"
            rows.append(row)
            continue
        row["auc"], row["ci_low"], row["ci_high"], _ = probe_auc(table, target, patients, n_classes, k, n_boot, seed)
        row["top_features"] = "; ".join(f"{f} {auc:.2f}" for f, auc in top_features(table, target, patients,
                                                                                     n_classes, k, seed))
        if np.isfinite(row["ci_low"]) and row["ci_low"] > warn:
            row["warning"] = (f"the label can be guessed from {name} features alone (AUC {row['auc']:.2f}, "
                              f"95% CI {row['ci_low']:.2f}-{row['ci_high']:.2f}); a model could cheat on "
                              f"{row['top_features'].split(' ')[0] if row['top_features'] else name}")
        rows.append(row)
    return pd.DataFrame(rows, columns=SHORTCUT_COLUMNS)
