"""Attention-based multiple-instance pooling of a unit's frames (``evaluate.pooling: attention``).

A unit (a patient, or an item when the run is scored per item) is a bag of frames. A gated-
attention network (Ilse, Tomczak & Welling, ICML 2018) scores each frame from its embedding, the
fold classifier's features just before its head (frozen); a softmax over the unit's frames turns
the scores into weights, and the unit's probability is the weighted mean of its frames'
probabilities. The frame probabilities stay the classifier's, so the weights compose with the
temperature calibration, the thresholds and every table that pools frames (``sonoflow.metrics.
aggregate``); the weights are what a user reads: the frames the decision leaned on.

One network per fold, trained on the fold's training patients' units (class-balanced unit
negative log-likelihood, full batch, AdamW), the epoch kept by the validation units' loss. Its
last layer starts at zero, so training starts from the plain mean, and epoch 0 (the mean itself)
competes: where weighting does not help the validation units, the mean's uniform weights are kept.
Test patients are only scored.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from sonoflow.evaluate import AttentionSettings
from sonoflow.loop import make_optimizer

log = logging.getLogger(__name__)


class GatedAttention(nn.Module):
    """Per-instance scores w^T (tanh(V h) * sigmoid(U h)); ``w`` starts at zero (uniform weights)."""

    def __init__(self, dim: int, hidden: int = 128, dropout: float = 0.25):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.v = nn.Linear(dim, hidden)
        self.u = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1)
        nn.init.zeros_(self.w.weight)
        nn.init.zeros_(self.w.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.drop(h)
        return self.w(torch.tanh(self.v(h)) * torch.sigmoid(self.u(h))).squeeze(1)


def bag_softmax(scores: torch.Tensor, bags: torch.Tensor, n_bags: int) -> torch.Tensor:
    """Softmax of ``scores`` within each bag (``bags``: the bag index of each instance)."""
    peak = torch.full((n_bags,), -torch.inf, dtype=scores.dtype).scatter_reduce(0, bags, scores, "amax")
    exp = torch.exp(scores - peak[bags])
    return exp / torch.zeros(n_bags, dtype=scores.dtype).index_add(0, bags, exp)[bags]


def pooled(weights: torch.Tensor, probs: torch.Tensor, bags: torch.Tensor, n_bags: int) -> torch.Tensor:
    """(n_bags, C): the weighted sum of the instances' probabilities per bag (weights sum to 1 per bag)."""
    return torch.zeros(n_bags, probs.shape[1], dtype=probs.dtype).index_add(0, bags, weights[:, None] * probs)


@dataclass
class Bags:
    """Instances of one part: embeddings, frame probabilities, bag index per instance, bag targets."""

    embeddings: torch.Tensor
    probs: torch.Tensor
    index: torch.Tensor
    targets: torch.Tensor

    @classmethod
    def of(cls, table: pd.DataFrame, embeddings: np.ndarray, labels: Sequence[str], key: str) -> "Bags":
        """``table``: the frames' prediction table (``prob_<label>``, ``label``, ``key``), rows
        aligned with ``embeddings``; a bag per value of ``key`` (patient_id or item_id)."""
        codes, _ = pd.factorize(table[key].astype(str), sort=True)
        first = pd.Series(table["label"].to_numpy()).groupby(codes).first()
        label_index = {name: i for i, name in enumerate(labels)}
        return cls(torch.as_tensor(embeddings, dtype=torch.float32),
                   torch.as_tensor(table[[f"prob_{name}" for name in labels]].to_numpy(), dtype=torch.float32),
                   torch.as_tensor(codes, dtype=torch.long),
                   torch.as_tensor(first.map(label_index).to_numpy(), dtype=torch.long))

    @property
    def n(self) -> int:
        return len(self.targets)


def _unit_loss(model: GatedAttention, bags: Bags, class_weight: torch.Tensor) -> torch.Tensor:
    weights = bag_softmax(model(bags.embeddings), bags.index, bags.n)
    unit = pooled(weights, bags.probs, bags.index, bags.n).clamp_min(1e-7)
    return nn.functional.nll_loss(unit.log(), bags.targets, weight=class_weight)


def fit_attention(train: Bags, val: Bags, n_classes: int,
                  settings: AttentionSettings) -> tuple[GatedAttention, pd.DataFrame, dict]:
    """Train the attention on ``train``'s bags, keep the step with the lowest ``val`` unit loss
    (step 0: uniform weights, the mean). Embeddings are standardised with the training frames'
    mean and spread, kept in the returned ``scaler``."""
    torch.manual_seed(settings.seed)
    mean, std = train.embeddings.mean(0), train.embeddings.std(0).clamp_min(1e-6)
    scale = lambda bags: Bags((bags.embeddings - mean) / std, bags.probs, bags.index, bags.targets)  # noqa: E731
    train, val = scale(train), scale(val)
    counts = torch.bincount(train.targets, minlength=n_classes).float()
    class_weight = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    model = GatedAttention(train.embeddings.shape[1], settings.hidden, settings.dropout)
    optimizer = make_optimizer("adamw", model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    rows, best, best_state, since = [], np.inf, None, 0
    for step in range(settings.epochs + 1):
        if step:
            model.train()
            optimizer.zero_grad()
            loss = _unit_loss(model, train, class_weight)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            train_loss = float(_unit_loss(model, train, class_weight))
            val_loss = float(_unit_loss(model, val, class_weight))
        improved = val_loss < best - 1e-6
        rows.append({"step": step, "train_loss": train_loss, "val_loss": val_loss})
        if improved:
            best, best_state, since = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
            if since >= settings.patience:
                break
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    kept = int(history.loc[history["val_loss"].idxmin(), "step"])
    history["best"] = history["step"] == kept  # the step whose network is returned
    log.info("attention: kept step %d of %d (validation unit loss %.4f; the mean's %.4f)", kept, len(rows) - 1, best,
             history.at[0, "val_loss"])
    return model.eval(), history, {"mean": mean, "std": std}


@torch.no_grad()
def attention_weights(model: GatedAttention, bags: Bags, scaler: dict) -> np.ndarray:
    """Each instance's weight within its bag (they sum to 1 per bag)."""
    scores = model((bags.embeddings - scaler["mean"]) / scaler["std"])
    return bag_softmax(scores, bags.index, bags.n).numpy()


@torch.no_grad()
def frame_features(model: nn.Module, model_name: str, frames, input_size: int, *, batch_size: int = 64,
                   device: torch.device | None = None, amp: bool = True,
                   tta: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's probabilities (``sonoflow.train.predict_proba``, with the same test-time
    views) and each frame's embedding: the input of the model's head, averaged over the views."""
    from sonoflow.models import head_module
    from sonoflow.train import predict_proba

    captured: list[torch.Tensor] = []
    head = head_module(model, model_name)
    handle = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach().float().cpu()))
    try:
        probs = predict_proba(model, frames, input_size, batch_size, device, amp, tta)
    finally:
        handle.remove()
    if not captured:
        return probs, np.zeros((0, 0), np.float32)
    views = len(captured) // -(-len(frames) // batch_size)
    features = torch.cat([torch.stack(captured[i:i + views]).mean(0) for i in range(0, len(captured), views)])
    return probs, features.flatten(1).numpy()


def weight_table(table: pd.DataFrame, weights: np.ndarray) -> pd.DataFrame:
    """The frames' id columns with their ``attention`` weight."""
    from sonoflow.metrics import ID_COLUMNS

    out = table[[c for c in ID_COLUMNS if c in table.columns]].reset_index(drop=True).copy()
    out["attention"] = np.asarray(weights, dtype=np.float64)
    return out


@dataclass
class FoldAttention:
    """What rule attend writes for one fold."""

    weights: dict[str, pd.DataFrame]  # part (val, test) -> the frames' id columns and ``attention``
    history: pd.DataFrame
    unit: str
    examples: list  # validation units to show: (unit id, label, [(frame, weight), ...] by weight)

    @property
    def kept_step(self) -> int:
        """The training step whose network was kept (0: none beat the plain mean)."""
        return int(self.history.loc[self.history["best"], "step"].iloc[0])


def attend_fold(model: nn.Module, checkpoint: dict, frames: pd.DataFrame, splits: dict, fold: int, store,
                settings: AttentionSettings, unit: str = "auto", shown: int = 6) -> FoldAttention:
    """Train one fold's attention on its training patients' units and weigh its validation and
    test frames. ``model`` and ``checkpoint``: the fold's classifier (sonoflow.cam.load_classifier);
    ``store``: its input frames; ``unit``: evaluate.unit (resolved on the usable frames, as evaluate does)."""
    from sonoflow.evaluate import LEVEL_KEYS
    from sonoflow.split import partition_for_fold, resolve_unit, select_frames, usable_frames
    from sonoflow.train import prediction_table

    labels = list(checkpoint["labels"])
    trained = checkpoint["settings"]
    frames = usable_frames(frames, splits)
    unit, why = resolve_unit(frames, unit)
    log.info("fold %d, attention over each %s's frames (%s)", fold, unit, why)
    partition = partition_for_fold(splits, fold)
    device = next(model.parameters()).device
    parts, bags = {}, {}
    for name in ("train", "val", "test"):
        chosen = select_frames(frames, partition, name)
        if not len(chosen):
            parts[name] = (chosen, prediction_table(chosen, np.zeros((0, len(labels))), labels))
            continue
        probs, features = frame_features(model, checkpoint["model_name"], store.gather(chosen), trained["input_size"],
                                         device=device, amp=bool(trained.get("amp", True)), tta=trained.get("tta") or ())
        parts[name] = (chosen, prediction_table(chosen, probs, labels))
        bags[name] = Bags.of(parts[name][1], features, labels, LEVEL_KEYS[unit])
    network, history, scaler = fit_attention(bags["train"], bags["val"], len(labels), settings)
    weights = {}
    for name in ("val", "test"):
        _, table = parts[name]
        values = attention_weights(network, bags[name], scaler) if name in bags else np.zeros(0)
        weights[name] = weight_table(table, values)
    val_frames, val_table = parts["val"]
    return FoldAttention(weights, history, unit, _examples(val_frames, val_table, weights["val"], store,
                                                           LEVEL_KEYS[unit], shown, settings.seed))


def _examples(frames: pd.DataFrame, table: pd.DataFrame, weights: pd.DataFrame, store, key: str, shown: int,
              seed: int) -> list:
    """Up to ``shown`` units of ``table`` with several frames, one per class in turn, drawn by
    ``seed``: (unit id, label, [(frame, weight), ...] heaviest first)."""
    weighted = table.assign(attention=weights["attention"].to_numpy(), _row=np.arange(len(table)))
    sizes = weighted.groupby(key)["_row"].size()
    several = weighted[weighted[key].isin(sizes[sizes > 1].index)]
    rng = np.random.default_rng(seed)
    per_class = {label: list(rng.permutation(sorted(group[key].unique())))
                 for label, group in several.groupby("label", sort=True)}
    chosen = []
    while len(chosen) < shown and any(per_class.values()):
        for label in list(per_class):
            if per_class[label] and len(chosen) < shown:
                chosen.append((per_class[label].pop(0), label))
    out = []
    for unit_id, label in chosen:
        rows = several[several[key] == unit_id].sort_values("attention", ascending=False)
        images = store.gather(frames.iloc[rows["_row"].to_numpy()])
        out.append((str(unit_id), label, [(image[0] if image.ndim == 3 else image, float(w))
                                           for image, w in zip(images, rows["attention"])]))
    return out
