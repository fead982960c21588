"""Applying a trained run to new cases: the fold ensemble's probabilities per frame, item and
patient, the call (argmax, or the binary question's Youden threshold chosen on validation),
and the Grad-CAM of the ensemble's call (drawn by sonoflow.figures.prediction_overlay_figure; the
HTML report is sonoflow.report.prediction_page).

The frames come from the same ingest, denoise and (for ROI input) segmentation steps as the
training data, and probabilities are aggregated exactly as evaluation aggregates the test
patients: the folds' softmax per frame calibrated by the run's temperature and averaged over the
folds, then pooled over an item's or a patient's frames by the run's pooling. So a case that was
also a test case gets the probabilities evaluation reported for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sonoflow.calibrate import calibrate_table
from sonoflow.metrics import aggregate, fold_ensemble

CALL_COLUMNS = ["score", "threshold", "call"]


@dataclass
class Prediction:
    frames: pd.DataFrame  # fold-ensemble probabilities per frame
    items: pd.DataFrame  # per item: mean over its frames, the call
    patients: pd.DataFrame  # per patient: mean over its frames, the call


def unlabelled_sheet(sheet_path: str | os.PathLike, patients: Sequence[str]) -> pd.DataFrame:
    """The rows of a sample sheet for ``patients`` with absolute paths and no label: e.g. a run's
    own test patients as new cases, to check predict against evaluation."""
    from sonoflow.sheet import read_sheet

    rows = read_sheet(sheet_path)
    return rows.loc[rows["patient_id"].isin(set(patients)), ["patient_id", "item_id", "path", "mask"]]


def with_calls(table: pd.DataFrame, labels: Sequence[str], positive: Sequence[str], threshold: float | None) -> pd.DataFrame:
    """``predicted`` is the most probable class; for a binary question also the positive classes'
    summed probability (``score``), the cut chosen on validation, and ``call`` positive/negative."""
    table = table.copy()
    if positive:
        table["score"] = table[[f"prob_{name}" for name in positive]].sum(axis=1)
        table["threshold"] = threshold if threshold is not None else 0.5
        table["call"] = np.where(table["score"] >= table["threshold"], "positive", "negative")
    return table


def ensemble_prediction(fold_tables: Sequence[pd.DataFrame], labels: Sequence[str], thresholds: Mapping,
                        positive: Sequence[str] = (), *, temperature: float = 1.0, pooling: str = "mean",
                        k: int = 3) -> Prediction:
    """Fold tables (sonoflow.train.prediction_table of every fold on the same frames) -> the fold
    ensemble per frame, item and patient, exactly as evaluate computes its test part: every fold's
    probabilities calibrated by the run's temperature (fitted on its validation folds), averaged
    over the folds, then pooled per item and patient by the run's pooling. Items take the item-level
    threshold when the run was scored per item, else the image-level one; patients the patient-level one."""
    frames = fold_ensemble([calibrate_table(table, labels, temperature) for table in fold_tables], labels)
    items = aggregate(frames, labels, "item_id", pooling, k)
    patients = aggregate(frames, labels, "patient_id", pooling, k)
    return Prediction(frames=with_calls(frames, labels, positive, thresholds.get("image")),
                      items=with_calls(items, labels, positive, thresholds.get("item", thresholds.get("image"))),
                      patients=with_calls(patients, labels, positive, thresholds.get("patient")))


def patients_seen(splits: Mapping) -> set[str]:
    """Patients some fold trained or early-stopped on (every non-test patient of the run)."""
    return {pid for fold in splits["folds"] for part in ("train", "val") for pid in fold[part]}


def mark_seen_patients(table: pd.DataFrame, seen: set[str]) -> pd.DataFrame:
    """``seen_in_training``: a patient id the run's models were fitted or early-stopped on; their
    probabilities are optimistic. The run's own test patients are not seen."""
    return table.assign(seen_in_training=table["patient_id"].isin(seen))


def called_class(item: Mapping, labels: Sequence[str], positive: Sequence[str] = ()) -> str:
    """The class an item's call stands for: the most probable class; for a binary question the
    most probable class on the side of the threshold the call fell (a positive call below the
    argmax is drawn for its positive class, not for the argmax)."""
    if not positive or "call" not in item:
        return item["predicted"]
    side = [name for name in labels if (name in positive) == (item["call"] == "positive")]
    return max(side, key=lambda name: item[f"prob_{name}"])


def cam_blends(images: np.ndarray, cams: np.ndarray) -> np.ndarray:
    """Each gray frame (N, H, W uint8) blended with its CAM (N, H, W in [0, 1]) by pytorch-grad-cam's
    ``show_cam_on_image`` (jet, 0.55 of the frame): (N, H, W, 3) RGB uint8, for the overlay figure."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    out = [show_cam_on_image(np.repeat(image[..., None], 3, axis=2).astype(np.float32) / 255, cam, use_rgb=True,
                             image_weight=0.55) for image, cam in zip(images, cams)]
    return np.stack(out) if out else np.zeros((0, *images.shape[1:], 3), np.uint8)


def representative_frames(frames: pd.DataFrame, items: pd.DataFrame, labels: Sequence[str], limit: int,
                          positive: Sequence[str] = ()) -> pd.DataFrame:
    """Per item (at most ``limit``, in patient and item order): the frame on which the ensemble is
    most sure of the class the item's call stands for; its CAM is drawn for that class."""
    chosen = []
    for item in items.sort_values(["patient_id", "item_id"]).head(limit).to_dict("records"):
        shown_class = called_class(item, labels, positive)
        of_item = frames[frames["item_id"] == item["item_id"]]
        column = f"prob_{shown_class}"
        best = of_item.loc[of_item[column].idxmax()]
        chosen.append({**best.to_dict(), "item_predicted": shown_class, "class_index": list(labels).index(shown_class),
                       "item_probability": item[column], "item_call": item.get("call", "")})
    return pd.DataFrame(chosen)


def fold_cams(model, checkpoint: Mapping, images: np.ndarray, classes: Sequence[int], method: str,
              batch_size: int = 16) -> np.ndarray:
    """One fold's CAMs (N, H, W) of ``images`` for ``classes``, at the images' resolution."""
    from sonoflow.cam import compute_cams, model_input, to_frame_size

    device = next(model.parameters()).device
    x = model_input(images, checkpoint["settings"]["input_size"], device)
    return to_frame_size(compute_cams(model, checkpoint["model_name"], x, classes, method, batch_size), images.shape[-2:])


def predict_run(frames: pd.DataFrame, checkpoints: Sequence[str | os.PathLike], stores: Sequence, labels: Sequence[str],
                thresholds: Mapping, positive: Sequence[str] = (), *, overlays: int = 24, cam_method: str = "gradcam",
                device: str = "auto", temperature: float = 1.0, pooling: str = "mean",
                k: int = 3) -> tuple[Prediction, pd.DataFrame, np.ndarray, np.ndarray, bool]:
    """Every fold's classifier (``checkpoints[k]`` reading its frames from ``stores[k]``) on
    ``frames``; returns the prediction, the frames shown, their pixels, the CAMs drawn over them
    and whether those are the fold ensemble's (mean of the folds' CAMs; only when every fold saw
    the same pixels, i.e. not for ROI input with one segmenter per fold, else fold 0's)."""
    from sonoflow.cam import load_classifier
    from sonoflow.train import predict_proba, prediction_table

    fold_tables = []
    for path, store in zip(checkpoints, stores):
        model, checkpoint = load_classifier(path, device, "train.device")
        if list(checkpoint["labels"]) != list(labels):
            raise ValueError(f"{path} was trained for labels {checkpoint['labels']}, the run's are {list(labels)}")
        probs = predict_proba(model, store.gather(frames), checkpoint["settings"]["input_size"],
                              device=next(model.parameters()).device, amp=checkpoint["settings"].get("amp", True),
                              tta=checkpoint["settings"].get("tta") or ())
        fold_tables.append(prediction_table(frames, probs, labels))
    prediction = ensemble_prediction(fold_tables, labels, thresholds, positive, temperature=temperature,
                                     pooling=pooling, k=k)
    shown = representative_frames(prediction.frames, prediction.items, list(labels), overlays, positive)
    if shown.empty:
        return prediction, shown, np.zeros((0, 1, 1), np.uint8), np.zeros((0, 1, 1), np.float32), False
    images, cams = [], []
    for path, store in zip(checkpoints, stores):
        model, checkpoint = load_classifier(path, device, "train.device")
        images.append(store.gather(shown))
        cams.append(fold_cams(model, checkpoint, images[-1], shown["class_index"].tolist(), cam_method))
    ensemble = all(np.array_equal(images[0], other) for other in images[1:])
    return prediction, shown, images[0], (np.mean(cams, axis=0) if ensemble else cams[0]), ensemble
