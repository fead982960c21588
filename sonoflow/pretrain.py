"""Optional stage pretrain: self-supervised contrastive pretraining (SimCLR; Chen et al., ICML
2020) of a classifier's backbone on the user's own frames, before it is fine-tuned on the labels.

Per fold, the backbone (from its pretrained weights, ``start: weights``, or from random weights,
``start: random``) learns to map two augmentations of the same frame close together and those of
other frames apart (NT-Xent loss on a two-layer projection of the head's input features). The
augmentation is sonoflow's ultrasound augmentation, stronger: speckle, gain, time-gain ramps,
depth crops, shifts and zooms. Frames come from the fold's training patients only, labels unused;
the epoch is kept by the same loss on the validation patients' frames (fixed views); test
patients' frames are never read. The kept backbone, saved as a classifier checkpoint (its head
untrained), is what rule train starts that fold from (``train.init_from``'s mechanism). The loop
is sonoflow.loop.fit: resumable after a kill, on the GPU when present.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sonoflow.loop import EpochBatches, fit, make_optimizer, pick_device, resume_fingerprint, seed_everything, to_device
from sonoflow.stage_settings import PretrainSettings
from sonoflow.train import as_unit_float, augment_batch, make_scheduler, normalise

log = logging.getLogger(__name__)

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's partner among the 2N - 1 others, by cosine similarity / temperature."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(-torch.inf)
    n = len(z1)
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, partners)


class SimCLR(nn.Module):
    """The classifier with its head set aside (its input features are the representation) and a
    projection MLP on top; ``classifier()`` puts the head back."""

    def __init__(self, model: nn.Module, model_name: str, projection: int = 128):
        from sonoflow.models import head_module, replace_module, model_spec

        super().__init__()
        self.head_name = model_spec(model_name).head
        self.head = head_module(model, model_name)
        replace_module(model, self.head_name, nn.Identity())
        self.encoder = model
        width = self.head.in_features
        self.projector = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, projection))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))

    def classifier(self) -> nn.Module:
        from sonoflow.models import replace_module

        replace_module(self.encoder, self.head_name, self.head)
        return self.encoder


def pretrain(model: nn.Module, model_name: str, train_frames: np.ndarray, val_frames: np.ndarray, input_size: int,
             settings: PretrainSettings, resume_path: str | os.PathLike | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Contrastive pretraining of ``model`` (a classifier) on unlabelled uint8 frames; returns the
    classifier (its backbone the kept epoch's, its head as it came) and the history."""
    if len(train_frames) < 2 or len(val_frames) < 2:
        raise ValueError("contrastive pretraining needs at least 2 training and 2 validation frames")
    seed_everything(settings.seed)
    device = pick_device(settings.device, "pretrain.device")
    use_amp = settings.amp and device.type == "cuda"
    simclr = SimCLR(model, model_name, settings.projection).to(device)
    x_train = to_device(torch.as_tensor(np.ascontiguousarray(train_frames)), device)
    x_val = to_device(torch.as_tensor(np.ascontiguousarray(val_frames)), device)
    optimizer = make_optimizer("adamw", simclr.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = make_scheduler(optimizer, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    batches = EpochBatches(len(x_train), min(settings.batch_size, len(x_train)), generator)

    def views(x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_unit_float(x)
        return tuple(normalise(augment_batch(x, settings.augment, rng), input_size) for _ in range(2))

    def loss_of(module: nn.Module, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        first, second = views(x, rng)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return nt_xent(module(first), module(second), settings.temperature)

    def step(index: torch.Tensor):
        return loss_of(simclr, x_train[index], generator), {}

    @torch.no_grad()
    def validate(module: nn.Module) -> dict:
        module.eval()
        fixed = torch.Generator().manual_seed(settings.seed + 1)  # the same views every epoch
        size = min(settings.batch_size, len(x_val))
        losses = [float(loss_of(module, x_val[i:i + size], fixed)) for i in range(0, len(x_val) - 1, size)
                  if len(x_val[i:i + size]) > 1]
        return {"val_loss": float(np.mean(losses))}

    fitted = fit(simclr, optimizer, scheduler, generator, batches, step, validate, epochs=settings.epochs,
                 patience=settings.patience, device=device, logger=log,
                 describe=lambda row: f"train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
                                      f"({row['images_per_s']:.0f} frames/s)",
                 resume_path=resume_path, fingerprint=resume_fingerprint(
                     {"model": model_name, "input_size": input_size, **asdict(settings)}, train_frames, val_frames))
    log.info("pretraining kept epoch %d (validation contrastive loss %.4f)", fitted.best_epoch, fitted.best_loss)
    return simclr.classifier().cpu(), fitted.history


def pretrain_fold(frames: pd.DataFrame, splits, fold: int, store, model_name: str, labels, input_size: int,
                  weights: str | None, settings: PretrainSettings,
                  resume_path: str | os.PathLike | None = None) -> tuple[nn.Module, pd.DataFrame, dict]:
    """One fold's pretraining: the frames of its training patients (labels unused), stopped on its
    validation patients' frames; the test patients' frames are never gathered."""
    from sonoflow.models import build_model
    from sonoflow.split import partition_for_fold, select_frames, usable_frames

    frames = usable_frames(frames, splits)
    partition = partition_for_fold(splits, fold)
    parts = {name: select_frames(frames, partition, name) for name in ("train", "val")}
    log.info("fold %d: pretraining on %s", fold, ", ".join(
        f"{name} {part['patient_id'].nunique()} patients / {len(part)} frames" for name, part in parts.items()))
    seed_everything(settings.seed)
    model = build_model(model_name, len(labels), in_channels=getattr(store, "channels", 1),
                        weights=weights if settings.start == "weights" else None, input_size=input_size)
    model, history = pretrain(model, model_name, store.gather(parts["train"]), store.gather(parts["val"]), input_size,
                              settings, resume_path)
    return model, history, {name: sorted(part["patient_id"].unique()) for name, part in parts.items()}
