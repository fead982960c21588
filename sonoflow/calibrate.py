"""Calibrated probabilities: temperature scaling (Guo et al., 2017), one temperature per run.

The classifiers write softmax probabilities per frame. ``log p`` equals the logits up to a
constant per frame, which softmax ignores, so ``softmax(log p / T)`` is exactly
``softmax(logits / T)``: no logits need storing and nothing is retrained. The temperature is
fitted by minimising the negative log-likelihood of the pooled out-of-fold validation
predictions (every non-test patient predicted by the one fold model that never saw it) and
never looks at a test frame; it is then applied to every fold's test predictions before the
fold ensemble, and to ``predict``. T > 1 softens over-confident outputs; a temperature keeps
every frame's class ranking, so the argmax call and a two-class AUC do not change.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from sonoflow.metrics import class_indices, probabilities

# Probabilities below this (float32 softmax underflow) are clipped before the log: a finite logit.
FLOOR = 1e-30
# Searched range of log T: T in [1/50, 50].
LOG_T_BOUNDS = (-np.log(50.0), np.log(50.0))


def log_probabilities(table: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """(N, K) log-probabilities of a prediction table: the logits up to a constant per frame."""
    return np.log(np.clip(probabilities(table, labels), FLOOR, None))


def scaled(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) as (N, K) probabilities."""
    return np.exp(log_softmax(np.asarray(logits, np.float64) / float(temperature), axis=1))


def negative_log_likelihood(logits: np.ndarray, target: np.ndarray, temperature: float) -> float:
    """Mean NLL of the true classes under softmax(logits / T)."""
    log_p = log_softmax(np.asarray(logits, np.float64) / float(temperature), axis=1)
    return float(-log_p[np.arange(len(target)), target].mean())


def fit_temperature(validation: pd.DataFrame, labels: Sequence[str]) -> float:
    """The temperature minimising the NLL of ``validation`` (frame predictions with true labels:
    the pooled out-of-fold validation folds, never test). The NLL is convex in 1/T; the search is
    a bounded scalar minimisation of log T."""
    if validation.empty:
        raise ValueError("temperature scaling needs validation predictions; there are none")
    logits, target = log_probabilities(validation, labels), class_indices(validation, labels)
    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, target, np.exp(log_t)),
                             bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def at_bound(temperature: float) -> bool:
    """A fitted temperature at (near) the edge of the search: the validation predictions are (nearly)
    separable, so the NLL keeps falling as T -> 0; calibration on so few errors is unreliable."""
    # Within a factor e of the edge: where the NLL flattens out, the search stops short of it.
    return bool(np.isclose(np.log(temperature), LOG_T_BOUNDS, atol=1.0).any())


def calibrate_table(table: pd.DataFrame, labels: Sequence[str], temperature: float) -> pd.DataFrame:
    """A prediction table with its probabilities replaced by softmax(log p / T) (and ``predicted``
    recomputed, though a temperature never changes the argmax). T = 1 returns it unchanged."""
    if temperature == 1.0 or table.empty:
        return table
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"a temperature must be a positive number, got {temperature}")
    out = table.copy()
    calibrated = scaled(log_probabilities(table, labels), temperature)
    for index, name in enumerate(labels):
        out[f"prob_{name}"] = calibrated[:, index]
    if "predicted" in out.columns:
        out["predicted"] = [labels[i] for i in calibrated.argmax(1)]
    return out
