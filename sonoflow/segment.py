"""Stage 4, segment: a U-Net (segmentation-models-pytorch) that marks the lesion, and ROI crops.

The U-Net is trained on the frames that have a lesion mask, from the patients a
``PatientPartition`` allows (never test patients), with early stopping on a patient-grouped
validation part. It then predicts a mask for every frame; post-processing keeps the largest
component (or all above a minimum area) and fills holes; the classifier's ROI input is the
frame cropped around the predicted lesion. By default (``roi: fixed``) every crop has one size,
the same for every frame of the run (``roi_scale`` of the frame side, planned from the training
masks' lesion sizes), centred on the predicted lesion or, where the U-Net finds none, on its most
probable location: the crop's geometry then says nothing about the class. ``roi: fit`` crops to
each lesion's box with a margin and keeps the full frame where there is no lesion, so a crop's
zoom tells lesion from normal (kept for the studies that did this).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from sonoflow import checkpoints
from sonoflow.frames import IngestSettings, crop_resize
from sonoflow.models import adapt_input_channels, map_by_position
from sonoflow.stage_settings import SegmentSettings
from sonoflow.split import PatientPartition, select_frames, unit_hash
from sonoflow.loop import EpochBatches, fit, make_optimizer, pick_device, resume_fingerprint, seed_everything, to_device
from sonoflow.train import AugmentSettings, as_unit_float, augment_batch, normalise
from sonoflow.weights import resolve_weights

log = logging.getLogger("sonoflow.segment")

# --- Model --------------------------------------------------------------------------------------


def load_encoder_weights(model: nn.Module, encoder: str, path) -> None:
    """Published backbone weights into the U-Net's encoder; every encoder tensor must be covered.

    ``tu-*`` encoders are timm models (features only); the EfficientNet-PyTorch key layout is
    mapped onto the full timm model by position first, as for the classifier.
    """
    state = checkpoints.load_state_dict(path, "pretrained encoder weights")
    target = model.encoder.model if encoder.startswith("tu-") else model.encoder
    if any(key.startswith("_conv_stem") for key in state):
        import timm

        state = map_by_position(state, timm.create_model(encoder.removeprefix("tu-"), pretrained=False))
    ours = target.state_dict()
    missing = [key for key in ours if key not in state and not key.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"weights {path} do not fit encoder {encoder}: {len(missing)} tensors missing (e.g. {missing[:3]})")
    target.load_state_dict({key: value for key, value in state.items() if key in ours}, strict=False)
    log.info("encoder %s: %d tensors from %s", encoder, len(ours), path)


def build_unet(encoder: str, in_channels: int = 1, weights: str | None = None, depth: int = 5,
               decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)) -> nn.Module:
    """A one-class U-Net; with ``weights`` the encoder starts from them (RGB stem made gray).
    ``depth`` encoder stages and their ``decoder_channels`` set its size (smp's defaults: 5 and
    256-16)."""
    import segmentation_models_pytorch as smp

    path = resolve_weights(weights, encoder)
    model = smp.Unet(encoder_name=encoder, encoder_weights=None, encoder_depth=depth,
                     decoder_channels=tuple(decoder_channels), in_channels=3 if path else in_channels, classes=1)
    if path is not None:
        load_encoder_weights(model, encoder, path)
        adapt_input_channels(model.encoder, in_channels)
    return model


class DiceBCELoss(nn.Module):
    """Dice + binary cross-entropy on logits (smp's losses): overlap and per-pixel calibration."""

    def __init__(self) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        self.dice = smp.losses.DiceLoss("binary", from_logits=True)
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.bce(logits, target)


# --- Training -------------------------------------------------------------------------------------


@dataclass
class SegmenterResult:
    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    resumed_from_epoch: int = 0


def _logits(model: nn.Module, x: torch.Tensor, size: int, use_amp: bool) -> torch.Tensor:
    """U-Net logits at the frames' own resolution for a [0, 1] batch (B, 1, H, W)."""
    height, width = x.shape[-2:]
    x = normalise(x, size)
    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)  # as the model's weights are
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp):
        logits = model(x).float()
    if logits.shape[-2:] != (height, width):
        logits = nn.functional.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits


@torch.no_grad()
def predict_masks(model: nn.Module, frames: np.ndarray, settings: SegmentSettings, batch_size: int = 32,
                  device: torch.device | None = None) -> np.ndarray:
    """Lesion probabilities (N, H, W) float32 for uint8 frames (N, H, W)."""
    device = device or next(model.parameters()).device
    use_amp = settings.amp and device.type == "cuda"
    model.eval()
    out = np.empty(frames.shape, np.float32)
    for start in range(0, len(frames), batch_size):
        x = as_unit_float(torch.as_tensor(np.ascontiguousarray(frames[start : start + batch_size])).to(device))
        out[start : start + len(x)] = torch.sigmoid(_logits(model, x, settings.input_size, use_amp))[:, 0].cpu().numpy()
    return out


def train_segmenter(frames: np.ndarray, masks: np.ndarray, val_frames: np.ndarray, val_masks: np.ndarray,
                    settings: SegmentSettings, resume_path: str | os.PathLike | None = None) -> SegmenterResult:
    """Train a U-Net on (N, H, W) uint8 frames and 0/1 masks; early stopping on validation loss.

    With ``resume_path``, the full state is saved there after every epoch, and a run that finds a
    state for the same settings and data continues from its last saved epoch (``sonoflow.loop``).
    """
    if len(frames) == 0 or len(val_frames) == 0:
        raise ValueError("the segmenter needs masked frames in both its training and validation part")
    seed_everything(settings.seed)
    device = pick_device(settings.device, "segment.device")
    use_amp = settings.amp and device.type == "cuda"
    model = build_unet(settings.encoder, 1, settings.weights, **settings.architecture).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x_train = to_device(torch.as_tensor(np.ascontiguousarray(frames)), device)
    y_train = to_device(torch.as_tensor(np.ascontiguousarray(masks)), device)
    loss_fn = DiceBCELoss()
    optimizer = make_optimizer("adamw", model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.epochs, 1))
    generator = torch.Generator().manual_seed(settings.seed)
    batches = EpochBatches(len(x_train), settings.batch_size, generator, steps=settings.steps_per_epoch)
    val_target = np.ascontiguousarray(val_masks).astype(bool)

    def step(index: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x = as_unit_float(x_train[index])
        y = y_train[index].float().unsqueeze(1)
        if settings.augment.enabled:
            x, y = augment_batch(x, settings.augment, generator, masks=y)
        return loss_fn(_logits(model, x, settings.input_size, use_amp), y), {}

    def validate(scored: nn.Module) -> dict:
        probs = predict_masks(scored, val_frames, settings, device=device)
        val_loss = float(loss_fn(torch.logit(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6)).unsqueeze(1),
                                 torch.from_numpy(val_target).float().unsqueeze(1)))
        scores = mask_scores(np.stack([postprocess(p, settings) for p in probs]), val_target)
        return {"val_loss": val_loss, "val_dice": float(np.nanmean(scores["dice"]))}

    def describe(row: dict) -> str:
        return f"train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} val_dice {row['val_dice']:.3f}"

    fitted = fit(model, optimizer, scheduler, generator, batches, step, validate, epochs=settings.epochs,
                 patience=settings.patience, min_delta=settings.min_delta, device=device, logger=log,
                 describe=describe, resume_path=resume_path, seconds="epoch",
                 fingerprint=resume_fingerprint(settings.to_dict(), frames, masks, val_frames, val_masks))
    return SegmenterResult(model, fitted.history, fitted.best_epoch, fitted.resumed_from_epoch)


def save_segmenter(path, model: nn.Module, settings: SegmentSettings, partition: PatientPartition,
                   best_epoch: int) -> None:
    """The U-Net with its settings and the patients it trained and validated on (kept so that
    evaluation can prove it never saw the patients it is scored on)."""
    checkpoints.save_segmenter(path, model, settings=settings.to_dict(), best_epoch=best_epoch,
                               patients={"train": partition.train, "val": partition.val})


def load_segmenter(path, device: str | None = None) -> tuple[nn.Module, SegmentSettings, dict]:
    """The trained U-Net (on its configured device), its settings and its patient lists."""
    checkpoint = checkpoints.load_segmenter(path)
    stored = dict(checkpoint["settings"])
    settings = SegmentSettings(**{**stored, "augment": AugmentSettings(**stored["augment"]), "weights": None})
    model = build_unet(settings.encoder, 1, **settings.architecture)
    model.load_state_dict(checkpoint["model"])
    return model.to(pick_device(device or settings.device, "segment.device")), settings, checkpoint["patients"]


def segment_frames(model: nn.Module, frames: np.ndarray,
                   settings: SegmentSettings) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Post-processed lesion masks, ROI crops (same size as the frames) and the ROI table."""
    probabilities = predict_masks(model, frames, settings) if len(frames) else np.zeros(frames.shape, np.float32)
    masks = np.stack([postprocess(p, settings) for p in probabilities]) if len(frames) else np.zeros(frames.shape, np.uint8)
    if settings.roi == "fit":
        return (masks, *roi_crops(frames, masks, frames.shape[-1], settings.margin))
    if settings.roi_scale == "auto":
        raise ValueError("segment roi_scale 'auto' must be resolved from the training masks (with_roi_scale) first")
    return (masks, *roi_crops(frames, masks, frames.shape[-1], settings.margin, settings.roi_scale, probabilities,
                              settings.roi_prior))


def lesion_views(truth: np.ndarray, has_truth: np.ndarray, predicted: np.ndarray, rois: pd.DataFrame,
                 margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best lesion mask of every frame (the ground truth where the item has one, else the
    U-Net's) in frame geometry and in the geometry of its ROI crop, and where each came from
    (``truth`` or ``unet``). Explanation quality is scored against these."""
    has_truth = np.asarray(has_truth, bool)
    lesions = np.where(has_truth[:, None, None], truth, predicted).astype(np.uint8)
    geometry = IngestSettings(size=lesions.shape[-1], resize="pad")
    roi_lesions = np.empty_like(lesions)
    for index, row in enumerate(rois.itertuples()):
        box = (row.roi_y0, row.roi_y1, row.roi_x0, row.roi_x1)
        roi_lesions[index] = crop_resize(lesions[index], box, np.ones(lesions.shape[1:], bool), geometry, is_mask=True)
    return lesions, roi_lesions, np.where(has_truth, "truth", "unet")


# --- Which patients train which segmenter ---------------------------------------------------------


def segmenter_partition(frames: pd.DataFrame, splits: Mapping, name: str, settings: SegmentSettings) -> PatientPartition:
    """Which patients train and validate a segmenter; all others go in ``test`` (never used).

    ``all`` may use every non-test patient; ``fold_K`` only fold K's training patients, so that
    fold K's validation patients are unseen by the U-Net too (a strictly leak-free CV). Of the
    usable patients with masks, a ``val_fraction`` share chosen by a stable hash of the patient
    id (at least one) is held out for early stopping.
    """
    folds = {int(fold["fold"]): fold for fold in splits["folds"]}
    if name == "all":
        usable = set().union(*(set(f["train"]) | set(f["val"]) for f in folds.values()))
    elif name.startswith("fold_") and name[5:].isdigit() and int(name[5:]) in folds:
        usable = set(folds[int(name[5:])]["train"])
    else:
        raise ValueError(f"unknown segmenter {name!r}: 'all' or fold_K with K in {sorted(folds)}")
    has_mask = frames["has_mask"].astype(str).str.lower() == "true"
    masked = sorted(set(frames.loc[has_mask, "patient_id"]) & usable, key=lambda pid: unit_hash(settings.seed, pid))
    if len(masked) < 2:
        raise ValueError(f"segmenter {name}: {len(masked)} usable patient(s) with lesion masks; at least 2 are needed")
    val = masked[: max(1, math.ceil(settings.val_fraction * len(masked)))]
    everyone = set(frames["patient_id"])
    return PatientPartition(train=sorted(usable - set(val)), val=val, test=sorted(everyone - usable))


def masked_frames(frames: pd.DataFrame, partition: PatientPartition, part: str) -> pd.DataFrame:
    """The frames of one part that carry a ground-truth lesion mask (images with no lesion
    included: they teach the U-Net to predict nothing)."""
    chosen = select_frames(frames, partition, part)
    return chosen[chosen["has_mask"].astype(str).str.lower() == "true"]


def evaluation_frames(frames: pd.DataFrame, splits: Mapping, segmenter_path) -> tuple[pd.DataFrame, str]:
    """The masked frames a segmenter is scored on, and what they are: the test patients; else
    patients it never saw (fold K's validation patients for a fold_K segmenter); else, as a last
    resort and labelled so, its early-stopping validation patients. Overlap with its training
    patients is refused by PatientPartition."""
    patients = checkpoints.load_segmenter(segmenter_path)["patients"]
    has_mask = frames["has_mask"].astype(str).str.lower() == "true"
    masked = set(frames.loc[has_mask, "patient_id"])
    unseen = masked - set(patients["train"]) - set(patients["val"])
    for part, chosen in (("test", masked & set(splits["test"])), ("unseen", unseen),
                         ("early-stopping validation", masked & set(patients["val"]))):
        if chosen:
            PatientPartition(train=patients["train"], val=(), test=sorted(chosen))
            return frames[has_mask & frames["patient_id"].isin(chosen)], part
    raise ValueError("no masked frames outside the segmenter's training patients to evaluate it on")


# --- Post-processing and ROI ------------------------------------------------------------------------


def postprocess(probability: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """Threshold, fill holes, and keep the largest component (or all) above ``min_area``: uint8 0/1."""
    binary = ndimage.binary_fill_holes(probability >= settings.threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n < 2:
        return binary
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = np.flatnonzero(areas >= settings.min_area * binary.size) + 1
    if settings.keep == "largest" and len(big):
        big = big[[np.argmax(areas[big - 1])]]
    return np.isin(labels, big).astype(np.uint8)


def roi_box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """A square box (y0, y1, x0, x1) around the lesion with ``margin`` on each side; None if empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    height, width = mask.shape
    cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    side = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]) * (1 + 2 * margin)
    y0, x0 = max(0, int(round(cy - side / 2))), max(0, int(round(cx - side / 2)))
    y1, x1 = min(height, int(round(cy + side / 2))), min(width, int(round(cx + side / 2)))
    return y0, y1, x0, x1


def fixed_box(mask: np.ndarray, probability: np.ndarray, scale: float,
              prior: Sequence[float] | None = None) -> tuple[int, int, int, int]:
    """A square (y0, y1, x0, x1) of side ``scale`` x the frame's shorter side, centred on the
    lesion's box; without a lesion, on a place drawn from the smoothed lesion probability weighted
    by ``prior`` (where training lesions lie: centre y, x and sd as shares of the frame, a
    Gaussian), so that crops of frames without a lesion lie where, and spread as, lesion crops do
    (the probability's peak alone may sit at the fan's edge, and a fixed place would differ in
    depth from the lesions' spread: either lets a crop's content tell the class; issue 13's
    invisible-lesion test). Without a prior: the peak of the probability (the frame's centre when
    it is flat). The box is shifted to lie inside the frame, never shrunk: every frame's crop has
    the same size."""
    height, width = mask.shape
    side = max(2, min(height, width, int(round(scale * min(height, width)))))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows):
        cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    else:
        score = ndimage.gaussian_filter(probability.astype(np.float32), sigma=max(1.0, 0.05 * min(height, width)))
        if prior is not None:
            py, px, sy, sx = prior
            y = (np.arange(height, dtype=np.float32) + 0.5) / height
            x = (np.arange(width, dtype=np.float32) + 0.5) / width
            weight = np.exp(-0.5 * ((y[:, None] - py) / sy) ** 2 - 0.5 * ((x[None, :] - px) / sx) ** 2)
            score = (score * weight if score.max() > 0 else weight).astype(np.float64).ravel()
            # A draw, not the peak: the crop centres of frames without a lesion then spread as the
            # lesions' do (a peak would sit at the prior's centre every time, and a crop's depth
            # would tell the class). Seeded by the frame's probability map: the same frame, the same crop.
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(probability.tobytes()).digest()[:8], "little"))
            peak_y, peak_x = np.unravel_index(int(rng.choice(score.size, p=score / score.sum())), (height, width))
            cy, cx = peak_y + 0.5, peak_x + 0.5
        elif score.max() > 0:
            peak_y, peak_x = np.unravel_index(int(np.argmax(score)), score.shape)
            cy, cx = peak_y + 0.5, peak_x + 0.5
        else:
            cy, cx = height / 2, width / 2
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    return y0, y0 + side, x0, x0 + side


def roi_crops(frames: np.ndarray, masks: np.ndarray, size: int, margin: float, scale: float | None = None,
              probabilities: np.ndarray | None = None,
              prior: Sequence[float] | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """ROI crops (N, size, size) uint8 and a table of their boxes. With ``scale`` every crop is a
    fixed_box (one geometry for every frame); without, the lesion box with ``margin`` or, where
    there is no lesion, the full frame. ``has_roi``: the U-Net found a lesion."""
    geometry = IngestSettings(size=size, resize="pad")
    crops = np.empty((len(frames), size, size), np.uint8)
    rows = []
    for index, (frame, mask) in enumerate(zip(frames, masks)):
        lesion = roi_box(mask, margin)
        if scale is not None:
            box = fixed_box(mask, mask if probabilities is None else probabilities[index], scale, prior)
        else:
            box = lesion or (0, frame.shape[0], 0, frame.shape[1])
        crops[index] = crop_resize(frame, box, np.ones(frame.shape, bool), geometry)
        y0, y1, x0, x1 = box
        rows.append({"row": index, "has_roi": lesion is not None, "lesion_share": float(mask.mean()),
                     "roi_y0": y0, "roi_y1": y1, "roi_x0": x0, "roi_x1": x1})
    return crops, pd.DataFrame(rows, columns=["row", "has_roi", "lesion_share", "roi_y0", "roi_y1", "roi_x0", "roi_x1"])


def planned_roi_scale(masks: np.ndarray, margin: float, quantile: float = 0.9) -> float:
    """The fixed crop side (share of the frame side) that holds ``quantile`` of the training
    lesions with ``margin`` on each side: the 90th percentile of their boxes' longer side, within
    [0.25, 1]. Without any lesion mask: the full frame."""
    sides = []
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            sides.append(max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]) / min(mask.shape))
    if not sides:
        return 1.0
    return round(float(np.clip(np.quantile(sides, quantile) * (1 + 2 * margin), 0.25, 1.0)), 3)


def lesion_prior(masks: np.ndarray, min_sd: float = 0.05) -> tuple[float, float, float, float] | None:
    """Where lesions lie: the mean and sd of their boxes' centres (y, x), as shares of the frame
    height and width (sd at least ``min_sd``); None without any lesion."""
    centres = []
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            centres.append(((rows[0] + rows[-1] + 1) / 2 / mask.shape[0], (cols[0] + cols[-1] + 1) / 2 / mask.shape[1]))
    if not centres:
        return None
    centres = np.asarray(centres)
    sd = np.maximum(centres.std(axis=0), min_sd)
    return (round(float(centres[:, 0].mean()), 4), round(float(centres[:, 1].mean()), 4),
            round(float(sd[0]), 4), round(float(sd[1]), 4))


def with_roi_scale(settings: SegmentSettings, masks: np.ndarray) -> SegmentSettings:
    """The fixed crops' geometry from the segmenter's training masks (kept in its checkpoint):
    ``roi_scale: auto`` resolved, and ``roi_prior``, where training lesions lie."""
    if settings.roi_scale == "auto":
        scale = planned_roi_scale(masks, settings.margin)
        log.info("ROI crops: %.3f of the frame side for every frame (90th percentile of %d training lesions, margin "
                 "%.2f)", scale, int(sum(m.any() for m in masks)), settings.margin)
        settings = replace(settings, roi_scale=scale)
    prior = lesion_prior(masks)
    if prior is not None:
        log.info("frames without a lesion are cropped near where training lesions lie: centre (%.2f, %.2f) of the "
                 "frame, sd (%.2f, %.2f)", *prior)
    return replace(settings, roi_prior=prior)


# --- Metrics --------------------------------------------------------------------------------------


def hausdorff95(predicted: np.ndarray, truth: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance in pixels between mask borders (the medpy /
    MONAI convention: the larger of the two directed 95th percentiles). 0 when both masks are
    empty, NaN when exactly one is (the distance is undefined)."""
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    if not predicted.any() and not truth.any():
        return 0.0
    if not predicted.any() or not truth.any():
        return float("nan")

    def border(mask: np.ndarray) -> np.ndarray:
        return mask & ~ndimage.binary_erosion(mask, border_value=0)

    to_truth = ndimage.distance_transform_edt(~border(truth))
    to_predicted = ndimage.distance_transform_edt(~border(predicted))
    return float(max(np.percentile(to_truth[border(predicted)], 95), np.percentile(to_predicted[border(truth)], 95)))


def mask_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image Dice, IoU (smp.metrics; 1 when both masks are empty) and HD95, for (N, H, W) masks."""
    import segmentation_models_pytorch as smp

    p = torch.as_tensor(np.ascontiguousarray(predicted)).long().unsqueeze(1)
    t = torch.as_tensor(np.ascontiguousarray(truth)).long().unsqueeze(1)
    tp, fp, fn, tn = smp.metrics.get_stats(p, t, mode="binary")
    dice = smp.metrics.f1_score(tp, fp, fn, tn, reduction="none", zero_division=1.0)[:, 0].numpy()
    iou = smp.metrics.iou_score(tp, fp, fn, tn, reduction="none", zero_division=1.0)[:, 0].numpy()
    hd95 = np.array([hausdorff95(a, b) for a, b in zip(predicted, truth)])
    return {"dice": dice, "iou": iou, "hd95": hd95}


def segmentation_table(frames: pd.DataFrame, predicted: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """One row per evaluated frame: ids, label, Dice, IoU, HD95 and both lesion areas."""
    table = frames[["patient_id", "item_id", "frame_index", "label"]].reset_index(drop=True).copy()
    for name, values in mask_scores(predicted, truth).items():
        table[name] = values
    table["true_share"] = truth.reshape(len(truth), -1).mean(axis=1)
    table["predicted_share"] = predicted.reshape(len(predicted), -1).mean(axis=1)
    return table


def segmentation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd of Dice, IoU and HD95 per class, and over the frames that show a lesion."""
    lesion = table[table["true_share"] > 0]
    groups = [(label, part) for label, part in table.groupby("label")] + [("all lesions", lesion)]
    rows = []
    for label, part in groups:
        row = {"label": label, "frames": len(part), "patients": part["patient_id"].nunique()}
        for metric in ("dice", "iou", "hd95"):
            values = part[metric].dropna()
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{metric}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
