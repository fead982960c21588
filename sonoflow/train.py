"""Classifier training for one (model, fold): its step, augmentation, validation and predictions
(the epoch loop, early stopping and resume are ``sonoflow.loop``'s, shared with the U-Net).

The training frames live as one uint8 tensor on the training device (they were decoded once, at
ingest), so a batch is an index into memory; augmentation runs on the batch, on the same device.
That keeps a GPU fed without worker processes, and is what `benchmarks/bench_train.py` measures.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sonoflow import checkpoints
from sonoflow.io import save_csv
from sonoflow.loop import EpochBatches, fit, pick_device, resume_fingerprint, seed_everything, to_device
from sonoflow.loop import make_optimizer as loop_optimizer
from sonoflow.stage_settings import AugmentSettings, TrainSettings

log = logging.getLogger("sonoflow.train")

# Grayscale ImageNet statistics (the mean of the RGB ones): the first conv of a pretrained
# backbone is collapsed to one channel by summing, so inputs are normalised like its RGB inputs.
GRAY_MEAN, GRAY_STD = 0.449, 0.226


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    resumed_from_epoch: int = 0


def as_unit_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) or (B, C, H, W) -> float (B, C, H, W) in [0, 1]."""
    x = batch.float().div_(255.0)
    return x.unsqueeze(1) if x.ndim == 3 else x


def normalise(x: torch.Tensor, input_size: int) -> torch.Tensor:
    """[0, 1] float (B, C, H, W) -> the model's input: resized to input_size and standardised."""
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    return (x - GRAY_MEAN) / GRAY_STD


def augment_batch(x: torch.Tensor, settings: AugmentSettings, generator: torch.Generator,
                  masks: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Random flip, rotation, shift, zoom and intensity jitter, drawn per sample.

    ``x`` is the float batch in [0, 1] before normalisation. Random numbers come from
    ``generator`` on the CPU so that runs are reproducible on any device; they are drawn in one
    call and reach the device in one (pinned, asynchronous) copy, so a GPU is not held up by
    small host-to-device transfers. With ``masks`` (B, 1, H, W) float, the same geometry moves
    them too (nearest sampling, no intensity change), and the pair is returned.
    """
    batch = x.shape[0]
    # Rows: rotation, zoom, flip, shift x, shift y, contrast, brightness (each uniform in [0, 1)).
    draws = torch.rand(7, batch, generator=generator)
    limits = torch.tensor([math.radians(settings.rotate), settings.scale, 0.0, 2 * settings.translate,
                           2 * settings.translate, settings.contrast, settings.brightness])
    signed = (draws * 2 - 1) * limits[:, None]
    signed[2] = torch.where(draws[2] < settings.hflip, -1.0, 1.0)
    if x.device.type == "cuda":
        signed = signed.pin_memory().to(x.device, non_blocking=True)
    angle, zoom, flip = signed[0], 1 + signed[1], signed[2]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, signed[3]], dim=1),
            torch.stack([sin * flip, cos, signed[4]], dim=1),
        ],
        dim=1,
    )
    ultrasound = settings.speckle or settings.gain or settings.tgc or settings.depth_crop
    if ultrasound:  # drawn only when used, so that the geometric draws stay those of earlier versions
        # Rows: gain, TGC slope, TGC curvature (signed), depth kept (1 - depth_crop x uniform).
        extra = torch.rand(4, batch, generator=generator)
        extra_signed = (extra * 2 - 1) * torch.tensor([settings.gain, settings.tgc, settings.tgc, 0.0])[:, None]
        extra_signed[3] = 1 - settings.depth_crop * extra[3]
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        extra_signed = extra_signed.to(x.device)
        # A shallower depth: the top `kept` share of the (already moved) image fills the frame,
        # zoomed about the top centre (where the probe is), as a scanner shows it.
        kept = extra_signed[3].to(theta.dtype)
        theta = theta * kept.view(-1, 1, 1)
        theta[:, 1, 2] += kept - 1
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if ultrasound:
        x = ultrasound_intensity(x, extra_signed[0], extra_signed[1], extra_signed[2], settings.speckle, noise_seed)
    contrast = (1 + signed[5]).view(-1, 1, 1, 1)
    brightness = signed[6].view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp_(0, 1)
    if masks is None:
        return x
    masks = F.grid_sample(masks, grid[: len(masks)], mode="nearest", padding_mode="zeros", align_corners=False)
    return x, masks


def ultrasound_intensity(x: torch.Tensor, gain: torch.Tensor, slope: torch.Tensor, curve: torch.Tensor,
                         speckle: float, seed: int) -> torch.Tensor:
    """Gain, a time-gain-compensation ramp down the depth (rows) and multiplicative speckle noise.

    ``gain``, ``slope`` and ``curve`` are per-sample signed changes; the depth profile is
    ``1 + slope * d + curve * (d ** 2 - 1/3)`` with ``d`` from -1 (top) to 1 (bottom). Speckle is
    multiplicative noise on 2x2-pixel cells (speckle is coarser than a pixel), its std drawn per
    sample up to ``speckle``, from a generator on x's device seeded from the batch's draws.
    """
    depth = torch.linspace(-1, 1, x.shape[-2], device=x.device, dtype=x.dtype).view(1, 1, -1, 1)
    profile = (1 + gain.view(-1, 1, 1, 1)) * (1 + slope.view(-1, 1, 1, 1) * depth
                                                + curve.view(-1, 1, 1, 1) * (depth**2 - 1 / 3))
    x = x * profile.clamp_min(0)
    if speckle:
        noise_generator = torch.Generator(device=x.device).manual_seed(seed)
        cells = (x.shape[0], 1, (x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2)
        strength = torch.rand(x.shape[0], 1, 1, 1, generator=noise_generator, device=x.device, dtype=x.dtype) * speckle
        noise = torch.randn(cells, generator=noise_generator, device=x.device, dtype=x.dtype)
        noise = F.interpolate(noise, size=x.shape[-2:], mode="nearest")
        x = x * (1 + strength * noise).clamp_min(0)
    return x.clamp_(0, 1)


def class_weights(labels: np.ndarray, n_classes: int, frame_weights: np.ndarray | None = None) -> torch.Tensor:
    """Inverse-frequency weights (sklearn's 'balanced'); absent classes get weight 0. With
    ``frame_weights`` the frequencies are their sums per class (items, when frames share their item's weight)."""
    weights = np.ones(len(labels)) if frame_weights is None else np.asarray(frame_weights, np.float64)
    counts = np.bincount(labels, weights=weights, minlength=n_classes).astype(np.float64)
    values = np.where(counts > 0, weights.sum() / (n_classes * np.where(counts > 0, counts, 1.0)), 0.0)
    return torch.tensor(values, dtype=torch.float32)


def item_weights(items: Sequence) -> np.ndarray:
    """Per frame 1 / (the frames of its item): every item (a clip, an image) weighs the same, so a
    long clip does not outweigh a patient with one image."""
    _, inverse, counts = np.unique(np.asarray(items).astype(str), return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    return loop_optimizer(settings.optimizer, model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                          momentum=settings.momentum)


def lr_factor(epoch: int, settings: TrainSettings) -> float:
    """The learning rate of epoch index ``epoch`` (0-based) as a share of ``lr``: a linear warm-up
    over ``warmup_epochs`` (1/(w+1), 2/(w+1), ...), then constant (scheduler none) or a cosine
    from 1 towards 0 over the remaining epochs (with no warm-up, torch's CosineAnnealingLR)."""
    warmup = min(settings.warmup_epochs, max(settings.epochs - 1, 0))
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if settings.scheduler == "none":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(settings.epochs - warmup, 1)))


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings):
    if settings.scheduler not in ("cosine", "none"):
        raise ValueError(f"unknown scheduler {settings.scheduler!r}; use cosine or none")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(epoch, settings))


def make_ema(model: nn.Module, settings: TrainSettings):
    """timm's ModelEmaV3 of ``model`` (None when ``ema`` is 0). Its warm-up lets the average
    follow the weights closely in the first steps (decay 1 - (1 + step) ** -2/3, capped at
    ``ema``): short fine-tunes never average in the untrained head's first weights for long."""
    if not settings.ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=settings.ema, use_warmup=True)


TTA_VIEWS = ("hflip", "shift")
TTA_SHIFT = 0.04  # share of the side, each way


def tta_views(x: torch.Tensor, tta: Sequence[str]) -> list[torch.Tensor]:
    """The test-time views of a [0, 1] batch: itself; with ``hflip`` its mirror image; with
    ``shift`` four copies moved by TTA_SHIFT of the side (left, right, up, down; the edge that
    comes in is black, as outside a scan)."""
    unknown = set(tta) - set(TTA_VIEWS)
    if unknown:
        raise ValueError(f"unknown test-time augmentation {sorted(unknown)}; use {', '.join(TTA_VIEWS)}")
    views = [x]
    if "hflip" in tta:
        views.append(x.flip(-1))
    if "shift" in tta:
        h, w = x.shape[-2:]
        dy, dx = max(1, round(TTA_SHIFT * h)), max(1, round(TTA_SHIFT * w))
        views += [F.pad(x, (dx, 0, 0, 0))[..., :w], F.pad(x, (0, dx, 0, 0))[..., dx:],
                  F.pad(x, (0, 0, dy, 0))[..., :h, :], F.pad(x, (0, 0, 0, dy))[..., dy:, :]]
    return views


@torch.no_grad()
def predict_proba(model: nn.Module, frames: np.ndarray | torch.Tensor, input_size: int,
                  batch_size: int = 64, device: torch.device | None = None, amp: bool = True,
                  tta: Sequence[str] = ()) -> np.ndarray:
    """Softmax probabilities (N, n_classes) for uint8 frames (N, H, W) or (N, C, H, W); with
    ``tta`` the mean of the probabilities over the test-time views (``tta_views``)."""
    device = device or next(model.parameters()).device
    model.eval()
    data = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    outputs = []
    for start in range(0, len(data), batch_size):
        x = as_unit_float(data[start : start + batch_size].to(device))
        probs = 0
        views = tta_views(x, tta)
        for view in views:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                logits = model(normalise(view, input_size))
            probs = probs + torch.softmax(logits.float(), dim=1)
        outputs.append((probs / len(views)).cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, 0), np.float32)


def validation_metrics(probs: np.ndarray, target: np.ndarray, loss_fn: nn.Module) -> dict:
    """Loss, accuracy and (when every class is present) one-vs-rest AUC on the validation frames."""
    from sklearn.metrics import roc_auc_score

    log_probs = torch.log(torch.from_numpy(probs).clamp_min(1e-8))
    metrics = {"val_loss": float(loss_fn(log_probs, torch.from_numpy(target))),
               "val_accuracy": float((probs.argmax(1) == target).mean())}
    if len(np.unique(target)) == probs.shape[1]:
        scores = probs[:, 1] if probs.shape[1] == 2 else probs
        metrics["val_auc"] = float(roc_auc_score(target, scores, multi_class="ovr"))
    return metrics


# train.monitor -> the validation metric that picks the kept epoch (sonoflow.loop.fit).
MONITORS = {"loss": "val_loss", "auc": "val_auc"}


def train_classifier(
    model: nn.Module,
    train_frames: np.ndarray,
    train_labels: np.ndarray,
    val_frames: np.ndarray,
    val_labels: np.ndarray,
    n_classes: int,
    settings: TrainSettings,
    resume_path: str | os.PathLike | None = None,
    train_items: Sequence | None = None,
) -> TrainResult:
    """Train with early stopping on the validation loss or AUC (``settings.monitor``); returns the
    model of the best epoch by it. ``train_items``: each training frame's item, for
    ``settings.balance_items`` (every item weighs the same in the loss, or in the sampler's draw).

    With ``resume_path``, the full state is saved there after every epoch but the last
    (``sonoflow.loop.ResumeSaver`` skips epochs while saving would cost over a tenth of the
    training time), and a run that finds a
    state for the same settings and data continues from its last saved epoch.
    """
    if len(train_frames) == 0 or len(val_frames) == 0:
        raise ValueError("training and validation sets must both have frames")
    seed_everything(settings.seed)
    device = pick_device(settings.device, "train.device")
    use_amp = settings.amp and device.type == "cuda"
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True

    # Frames (uint8) and labels live on the training device: a batch is an index into them.
    x_train = to_device(torch.as_tensor(np.ascontiguousarray(train_frames)), device)
    y_train = to_device(torch.tensor(train_labels, dtype=torch.long), device)
    x_val = to_device(torch.as_tensor(np.ascontiguousarray(val_frames)), device)
    y_val = torch.tensor(val_labels, dtype=torch.long)

    per_frame = None
    if settings.balance_items:
        if train_items is None or len(train_items) != len(train_labels):
            raise ValueError("train.balance_items needs each training frame's item")
        per_frame = item_weights(train_items)
    weights = class_weights(train_labels, n_classes, per_frame) if settings.class_weighting == "balanced" else None
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None,
                                  label_smoothing=settings.label_smoothing,
                                  reduction="none" if per_frame is not None else "mean")
    eval_loss = nn.NLLLoss(weight=weights)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    augment = settings.training_augment  # refuses an unresolved geometric: auto
    sampler = settings.class_weighting == "sampler"
    if per_frame is not None and sampler:  # the sampler draws by class and item; the loss is a plain mean
        batches = EpochBatches(len(train_labels), settings.batch_size, generator,
                               weights=class_weights(train_labels, n_classes, per_frame).numpy()[train_labels] * per_frame)
    else:
        batches = EpochBatches(len(train_labels), settings.batch_size, generator,
                               labels=train_labels if sampler else None)
    item_loss = per_frame is not None and not sampler  # the loss weighs each frame by its item
    frame_weight = to_device(torch.as_tensor(per_frame, dtype=torch.float32), device) if item_loss else None
    class_weight = weights.to(device) if weights is not None else None
    ema = make_ema(model, settings)

    def training_loss(logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(logits, y)
        if per_frame is None:
            return loss
        if not item_loss:
            return loss.mean()
        # Per-frame losses (already times their class weight) weighted by item, over the batch's total weight.
        w = frame_weight[index]
        return (w * loss).sum() / (w * (class_weight[y] if class_weight is not None else 1.0)).sum()

    def step(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = as_unit_float(x_train[index])
        if augment.enabled:
            x = augment_batch(x, augment, generator)
        x = normalise(x, settings.input_size)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        y = y_train[index]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
            loss = training_loss(logits.float(), y, index)
        return loss, {"accuracy": (logits.argmax(1) == y).sum()}

    def validate(scored: nn.Module) -> dict:
        probs = predict_proba(scored, x_val, settings.input_size, max(settings.batch_size, 64), device, settings.amp)
        return validation_metrics(probs, y_val.numpy(), eval_loss)

    def describe(row: dict) -> str:
        auc = f" val_auc {row['val_auc']:.3f}" if "val_auc" in row else ""
        return (f"train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.3f}"
                f"{auc} ({row['images_per_s']:.0f} img/s)")

    if settings.monitor not in MONITORS:
        raise ValueError(f"unknown train.monitor {settings.monitor!r}; use {' or '.join(MONITORS)}")
    fitted = fit(model, optimizer, scheduler, generator, batches, step, validate, epochs=settings.epochs,
                 patience=settings.patience, device=device, logger=log, describe=describe, ema=ema,
                 monitor=MONITORS[settings.monitor],
                 resume_path=resume_path,
                 fingerprint=resume_fingerprint(settings.to_dict(), train_frames, train_labels, val_frames, val_labels))
    return TrainResult(model=model, history=fitted.history, best_epoch=fitted.best_epoch,
                       best_val_loss=fitted.best_loss, resumed_from_epoch=fitted.resumed_from_epoch)


def seconds_per_image(settings: TrainSettings, n_classes: int, *, in_channels: int = 1, frame_size: int = 256,
                      batches: int = 2) -> float:
    """Seconds per training image of this model and recipe on this machine: ``train_classifier``
    itself (augmentation, EMA, the optimiser) for one epoch of ``batches`` batches of noise frames,
    after one such epoch of warm-up. On the CPU it is timed by this process's CPU time over its
    threads, so that other load on a shared machine does not make the estimate (and a plan cut by
    it) depend on the moment; on a GPU by the wall clock. For the plan's time budget."""
    import time

    from sonoflow.models import build_model

    generator = np.random.default_rng(0)
    shape = (batches * settings.batch_size, *((in_channels,) if in_channels > 1 else ()), frame_size, frame_size)
    frames = generator.integers(0, 256, shape, dtype=np.uint8)
    labels = np.arange(len(frames)) % n_classes
    # geometric: auto is still open when the plan times (it decides it after): the cost is the same
    # either way, since every augmented batch is resampled through its affine grid.
    one_epoch = replace(settings, epochs=1, patience=1, warmup_epochs=0, init_from=None,
                        geometric=settings.geometric if isinstance(settings.geometric, bool) else True)
    model = build_model(settings.model, n_classes, in_channels=in_channels, weights=None, input_size=settings.input_size)
    cpu = pick_device(settings.device, "train.device").type == "cpu"
    clock = time.process_time if cpu else time.perf_counter
    for _ in range(2):  # the first epoch warms up; the second is timed
        started = clock()
        train_classifier(model, frames, labels, frames[:n_classes], labels[:n_classes], n_classes, one_epoch)
        seconds = clock() - started
    if cpu:
        seconds /= max(torch.get_num_threads(), 1)
    return seconds / len(frames)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, model_name: str, labels: Sequence[str],
                    settings: TrainSettings, in_channels: int, best_epoch: int) -> None:
    checkpoints.save_classifier(path, model, model_name=model_name, labels=labels, settings=settings.to_dict(),
                                in_channels=in_channels, best_epoch=best_epoch)


def prediction_table(frames: pd.DataFrame, probs: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Per-frame predictions: ids, true label, one probability column per class, predicted label."""
    table = frames[["shard", "row", "patient_id", "item_id", "frame_index", "label"]].reset_index(drop=True).copy()
    for index, name in enumerate(labels):
        table[f"prob_{name}"] = probs[:, index]
    table["predicted"] = [labels[i] for i in probs.argmax(1)]
    return table


def save_history(path: str | os.PathLike, history: pd.DataFrame) -> None:
    save_csv(path, history)


@dataclass(frozen=True)
class FoldOutputs:
    """Where ``run_fold`` writes one fold: the best model's ``checkpoint``, the per-epoch
    ``history`` and the fold's ``predictions_val`` and ``predictions_test`` tables."""

    checkpoint: Path
    history: Path
    predictions_val: Path
    predictions_test: Path

    def __init__(self, checkpoint: str | os.PathLike, history: str | os.PathLike, predictions_val: str | os.PathLike,
                 predictions_test: str | os.PathLike):
        for name, path in (("checkpoint", checkpoint), ("history", history), ("predictions_val", predictions_val),
                           ("predictions_test", predictions_test)):
            object.__setattr__(self, name, Path(path))

    @classmethod
    def in_folder(cls, folder: str | os.PathLike) -> "FoldOutputs":
        """The workflow's names in ``folder``: best.pt, history.csv, predictions_val.csv, predictions_test.csv."""
        folder = Path(folder)
        return cls(folder / "best.pt", folder / "history.csv", folder / "predictions_val.csv",
                   folder / "predictions_test.csv")


def run_fold(
    frames: pd.DataFrame,
    splits: Mapping,
    fold: int,
    store,
    settings: TrainSettings,
    labels: Sequence[str],
    outputs: FoldOutputs | str | os.PathLike,
    resume_path: str | os.PathLike | None = None,
) -> TrainResult:
    """Train one fold and write its checkpoint, history and validation and test predictions to
    ``outputs`` (a folder: ``FoldOutputs.in_folder``'s names in it).

    Frames reach the model only through the fold's PatientPartition, which refuses any patient
    in two parts: leakage is a hard error here, not a convention upstream.
    """
    from sonoflow.models import build_model, load_checkpoint_into
    from sonoflow.split import partition_for_fold, select_frames, usable_frames

    if not isinstance(outputs, FoldOutputs):
        outputs = FoldOutputs.in_folder(outputs)
    frames = usable_frames(frames, splits)
    partition = partition_for_fold(splits, fold)
    parts = {name: select_frames(frames, partition, name) for name in ("train", "val", "test")}
    class_index = {name: index for index, name in enumerate(labels)}
    targets = {name: part["label"].map(class_index).to_numpy() for name, part in parts.items()}
    log.info("fold %d: %s", fold, ", ".join(
        f"{name} {part['patient_id'].nunique()} patients / {len(part)} frames" for name, part in parts.items()))

    seed_everything(settings.seed)  # initial weights of the new head are seeded too
    in_channels = getattr(store, "channels", 1)
    model = build_model(settings.model, len(labels), in_channels=in_channels, weights=settings.weights,
                        input_size=settings.input_size)
    if settings.init_from:
        load_checkpoint_into(model, settings.init_from)
    result = train_classifier(model, store.gather(parts["train"]), targets["train"], store.gather(parts["val"]),
                              targets["val"], len(labels), settings, resume_path=resume_path,
                              train_items=parts["train"]["item_id"].to_numpy())
    save_checkpoint(outputs.checkpoint, result.model, model_name=settings.model, labels=labels,
                    settings=settings, in_channels=in_channels, best_epoch=result.best_epoch)
    save_history(outputs.history, result.history)
    device = next(result.model.parameters()).device
    for name in ("val", "test"):
        part = parts[name]
        probs = (predict_proba(result.model, store.gather(part), settings.input_size, device=device, amp=settings.amp,
                               tta=settings.tta)
                 if len(part) else np.zeros((0, len(labels)), np.float32))
        save_csv(getattr(outputs, f"predictions_{name}"), prediction_table(part, probs, labels))
    return result
