"""What the classifier's and the U-Net's training share: device choice, seeding, the epoch batch
sampler and one epoch loop, with early stopping and resume after a kill.

Each trainer supplies its own step (a batch's loss: augmentation, forward pass) and its own
validation metrics; ``fit`` runs the optimiser and the schedule, an optional moving average of
the weights (which is then what is validated and kept), early stopping on a validation metric,
the history, and the resume state: with a resume path the full state is saved after every epoch
(``ResumeSaver`` skips epochs while saving is dear), and a run that finds a state for the same
settings and data (``resume_fingerprint``) continues from its last saved epoch. Random numbers
are drawn in the order each trainer drew them before the loop was shared, so a seed gives the
results it gave.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from sonoflow import checkpoints

log = logging.getLogger("sonoflow.loop")


def pick_device(name: str = "auto", setting: str = "train.device") -> torch.device:
    """The torch device for ``name`` (auto: CUDA when present); ``setting`` is the config key the
    name came from, for the error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting} is 'cuda' but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    # Warn instead of failing for the few CUDA kernels without a deterministic version.
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


# Devices with torch's fused optimiser kernels (one pass over each parameter tensor).
FUSED_DEVICES = frozenset({"cpu", "cuda"})


def make_optimizer(name: str, parameters, *, lr: float, weight_decay: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW (``adamw``) or SGD with momentum (``sgd``), the one place every training loop gets
    its optimiser. Where every parameter is a float tensor on a device with torch's fused kernels
    (CPU, CUDA), those are used: the same update, without torch's default per-tensor loop (vgg16
    at 64 px, batch 16, 1 thread on CPU: AdamW's step 0.97 s default, 0.074 s fused, beside a
    4.6 s forward and backward pass; ``benchmarks/bench_optimizer.py``)."""
    parameters = list(parameters)
    fused = bool(parameters) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in parameters)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    raise ValueError(f"unknown optimizer {name!r}; use adamw or sgd")


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: through pinned memory and an asynchronous copy for CUDA."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


# --- Batches ---------------------------------------------------------------------------------------


class EpochBatches:
    """Index batches of one epoch, drawn anew each time it is iterated: a seeded permutation of the
    ``n`` samples or, with ``labels``, a class-balanced draw (``n`` with replacement, weighted by
    1 / class count), or with ``weights`` a draw weighted by them. With ``steps``, passes are
    repeated until there are ``steps`` batches (at least one pass, cut to ``steps``): small mask
    sets need more steps than one pass. A last
    batch of one is dropped, since BatchNorm cannot train on it (unless ``n`` is 1)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, *, labels: np.ndarray | None = None,
                 steps: int = 0, weights: np.ndarray | None = None):
        if batch_size < 2 and n > 1:
            raise ValueError(f"batch_size must be at least 2 (a batch of one is dropped: BatchNorm cannot train on it), "
                             f"got {batch_size}")
        if labels is not None and len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} samples")
        if weights is not None and len(weights) != n:
            raise ValueError(f"{len(weights)} weights for {n} samples")
        # Draw weights: 1 / class count with ``labels``, or given. A copy: they may be a read-only view.
        if labels is not None:
            labels = torch.tensor(labels)
            self.weights = (1.0 / torch.bincount(labels).float())[labels]
        else:
            self.weights = torch.tensor(np.asarray(weights), dtype=torch.float64) if weights is not None else None
        self.n, self.batch_size, self.steps, self.generator = n, batch_size, steps, generator

    def _one_pass(self) -> list[torch.Tensor]:
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=self.generator)
        else:
            order = torch.randperm(self.n, generator=self.generator)
        return [order[start : start + self.batch_size] for start in range(0, self.n, self.batch_size)
                if self.n == 1 or len(order[start : start + self.batch_size]) > 1]

    def draw(self) -> list[torch.Tensor]:
        batches = self._one_pass()
        while len(batches) < self.steps:
            batches += self._one_pass()
        return batches[: self.steps] if self.steps else batches

    def __iter__(self):
        return iter(self.draw())

    def on(self, device: torch.device) -> Sequence[torch.Tensor]:
        return batches_on(self.draw(), device)


def batches_on(batches: Sequence[torch.Tensor], device: torch.device) -> Sequence[torch.Tensor]:
    """An epoch's index batches on ``device``, moved in one copy (not one small transfer per
    step); they are drawn on the CPU, so the order is the same on any device."""
    if device.type == "cpu" or not batches:
        return batches
    return to_device(torch.cat(list(batches)), device).split([len(index) for index in batches])


# --- Resume --------------------------------------------------------------------------------------


def data_fingerprint(*arrays: np.ndarray) -> str:
    """A digest of the training data, so a resume state is only reused for the same inputs."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def resume_fingerprint(settings: Mapping, *arrays: np.ndarray) -> str:
    """What a resume state must have been saved for: these settings and this data."""
    return json.dumps([dict(settings), data_fingerprint(*arrays)], sort_keys=True, default=str)


def load_resume_state(path, fingerprint: str, logger: logging.Logger = log) -> dict | None:
    """The state saved at ``path`` for ``fingerprint``; None when there is none, it is damaged or
    it was saved for other settings or data (then training starts from epoch 0)."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = checkpoints.load_resume_state(path)
    except checkpoints.UnsafeCheckpointError as error:  # not what a killed job leaves: never used, never deleted
        raise checkpoints.UnsafeCheckpointError(f"{error}. A resume state only saves time: delete it, and training "
                                                f"starts from epoch 0") from None
    except checkpoints.CheckpointError as error:  # a damaged state means: start over
        logger.warning("ignoring unreadable resume state %s: %s", path, error)
        return None
    if state.get("fingerprint") != fingerprint:
        logger.info("resume state %s is for other settings or data; starting from epoch 0", path)
        return None
    return state


def _save_resume_state(path, state: dict) -> None:
    checkpoints.save_resume_state(path, state)


class ResumeSaver:
    """Saves the resume state after every epoch, unless a save is dear (over ``min_seconds``) and
    would cost more than ``share`` of the training time: with fast epochs (a GPU) and a big model,
    writing the full state after each would leave the device idle. Then epochs are skipped until
    the time since the last save is ``1 / share`` times what a save takes. The first epoch is
    always saved, and so is every epoch of a small model or a slow (CPU) run; the last never is:
    the job writes its outputs and deletes the state next, so a kill in between redoes one epoch
    (a one-epoch run saves nothing; vgg16's state with AdamW's is 1.6 GB)."""

    def __init__(self, share: float = 0.1, min_seconds: float = 0.25):
        self.share, self.min_seconds = share, min_seconds
        self.save_seconds = 0.0
        self.last_saved = time.perf_counter()

    def due(self, epoch: int, epochs: int) -> bool:
        if epoch >= epochs:
            return False
        if self.save_seconds < self.min_seconds:
            return True
        return time.perf_counter() - self.last_saved >= self.save_seconds / self.share

    def save(self, path, state: dict) -> None:
        started = time.perf_counter()
        _save_resume_state(path, state)
        self.last_saved = time.perf_counter()
        self.save_seconds = self.last_saved - started


# --- The loop ------------------------------------------------------------------------------------


@dataclass
class FitResult:
    history: pd.DataFrame  # one row per epoch; ``best`` marks the epoch whose weights were kept
    best_epoch: int
    best_loss: float
    resumed_from_epoch: int = 0


Step = Callable[[torch.Tensor], "tuple[torch.Tensor, Mapping[str, torch.Tensor]]"]


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator,
        batches: EpochBatches, step: Step, validate: Callable[[nn.Module], dict], *, epochs: int, patience: int,
        device: torch.device, logger: logging.Logger, describe: Callable[[dict], str], min_delta: float = 0.0,
        ema=None, resume_path: str | os.PathLike | None = None, fingerprint: str = "",
        seconds: str = "train", monitor: str = "val_loss") -> FitResult:
    """Train ``model`` for up to ``epochs`` with early stopping on a validation metric; on return
    it holds the weights of the epoch with the best one.

    ``step(index)`` computes one batch's loss (augmentation and forward pass; the loop runs the
    backward pass and the optimiser) and per-batch sums, e.g. ``{"accuracy": correct}``, reported
    as ``train_<name>`` means over the epoch's samples next to ``train_loss``. ``validate(module)``
    gives the epoch's validation metrics, ``val_loss`` among them. ``monitor`` names the one that
    picks the epoch: ``val_loss`` (lower is better) or another (``val_auc``: higher is better);
    when validation does not give it (an AUC needs every class among the validation frames) the
    loss is used, with a warning. A value counts as better when it beats the best by more than
    ``min_delta`` (or, for a metric other than the loss, equals it with a lower validation loss);
    training stops after ``patience`` epochs without one. With ``ema`` (timm's
    ModelEmaV3: ``update(model, step=)`` and ``module``) the average is updated after every
    optimiser step, and it is what is validated and kept.
    ``describe(row)`` is the epoch's log line after "epoch k/n". The history's ``seconds`` time
    the training part of an epoch (``seconds="train"``) or all of it, validation included
    (``"epoch"``); ``images_per_s`` is the training throughput either way. ``generator`` (the
    batches' and augmentation's), the global torch RNG, the optimiser, the schedule, the EMA and
    the step count are in the resume state, so a resumed run continues as an uninterrupted one.
    """
    if seconds not in ("train", "epoch"):
        raise ValueError(f"seconds must be 'train' or 'epoch', got {seconds!r}")
    history: list[dict] = []
    # The best is kept as a score to minimise: the loss, or minus a metric where higher is better.
    best_loss, best_score, best_epoch, best_state, start_epoch, steps = math.inf, math.inf, 0, None, 0, 0
    saver = ResumeSaver()
    state = load_resume_state(resume_path, fingerprint, logger)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best_loss = state["history"], state["best_loss"]
        best_score = state.get("best_score", best_loss)
        monitor = state.get("monitor", monitor)
        best_epoch, best_state = state["best_epoch"], state["best_state"]
        start_epoch, steps = state["epoch"], state.get("step", 0)
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        logger.info("resuming from the state saved after epoch %d", start_epoch)

    for epoch in range(start_epoch + 1, epochs + 1):
        if best_epoch > 0 and epoch - best_epoch > patience:
            logger.info("early stop: no better %s for %d epochs; stopped at epoch %d of %d; kept epoch %d's "
                        "weights", monitor, patience, epoch - 1, epochs, best_epoch)
            break
        model.train()
        # Running sums stay on the device: no host sync per step keeps a GPU busy.
        started, seen = time.perf_counter(), 0
        loss_sum, sums = torch.zeros((), device=device), {}
        for index in batches.on(device):
            loss, counts = step(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if ema is not None:
                ema.update(model, step=steps)
            seen += len(index)
            loss_sum += loss.detach() * len(index)
            for name, value in counts.items():
                sums[name] = sums[name] + value if name in sums else value
        scheduler.step()
        train = {"train_loss": float(loss_sum) / max(seen, 1),  # waits for the device
                 **{f"train_{name}": float(total) / max(seen, 1) for name, total in sums.items()}}
        train_seconds = time.perf_counter() - started
        scored = ema.module if ema is not None else model  # what is validated and kept: the average, when there is one
        row = {"epoch": epoch, **train, **validate(scored), "lr": optimizer.param_groups[0]["lr"]}
        row["seconds"] = time.perf_counter() - started if seconds == "epoch" else train_seconds
        row["images_per_s"] = seen / max(train_seconds, 1e-9)
        if monitor not in row:
            logger.warning("%s not available on the validation frames (a class is missing there): the epoch is "
                           "picked by val_loss", monitor)
            monitor = "val_loss"
        score = row[monitor] if monitor == "val_loss" else -row[monitor]
        # A metric that saturates (an AUC of 1.0 on easy data) would keep its first epoch at the
        # top: a tie on it goes to the lower validation loss.
        tie = monitor != "val_loss" and score == best_score and row["val_loss"] < best_loss
        if score < best_score - min_delta or tie:
            best_loss, best_score, best_epoch = row["val_loss"], score, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
        history.append(row)
        logger.info("epoch %d/%d %s", epoch, epochs, describe(row))
        if resume_path is not None and saver.due(epoch, epochs):
            saver.save(resume_path, {
                "fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
                "best_loss": best_loss, "best_epoch": best_epoch, "best_state": best_state, "step": steps,
                "best_score": best_score, "monitor": monitor,
                **({"ema": ema.module.state_dict()} if ema is not None else {}),
            })

    if best_state is not None:
        model.load_state_dict(best_state)
    table = pd.DataFrame(history)
    table["best"] = table["epoch"] == best_epoch  # the epoch whose weights are returned
    return FitResult(history=table, best_epoch=best_epoch, best_loss=best_loss, resumed_from_epoch=start_epoch)
