"""Every checkpoint sonoflow writes or reads, in one place, and none of them can run code.

A ``.pt`` file is a pickle: loaded the classic way, a payload whose ``__reduce__`` names a shell
command runs it. Checkpoints cross hands (``train.init_from``, a colleague's ``results/`` that
``predict`` or ``cam`` read, pretrained weights), so every load here uses
``torch.load(weights_only=True)``, which accepts only tensors and plain values and refuses
anything else *before* building it. What is saved is therefore made of plain types only
(tensors, numbers, strings, None, lists, tuples, dicts): ``to_plain`` converts numpy values and
paths and refuses everything else at save time, so a checkpoint that could not be loaded back
is never written.

Kinds (each written atomically, so a killed job never leaves one that looks complete):
- classifier ``best.pt``: ``model`` (state dict), ``model_name``, ``labels``, ``settings``
  (plain dict), ``in_channels``, ``best_epoch`` — read by init_from, cam and predict;
- resume state (classifier ``fold_K.resume.pt``, segmenter ``<name>.resume.pt``; ``sonoflow.loop``):
  model, optimizer, scheduler and RNG states, history, best weights so far;
- segmenter ``unet.pt``: ``model``, ``settings`` (plain dict), ``best_epoch``, ``patients``;
- pretrained weights files (read only): a state dict, possibly under ``model``/``state_dict``.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path, PurePath
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sonoflow.io import atomic_path

CLASSIFIER_KEYS = ("model", "model_name", "labels", "settings", "in_channels", "best_epoch")
SEGMENTER_KEYS = ("model", "settings", "best_epoch", "patients")
RESUME_KEYS = ("fingerprint", "epoch", "model", "optimizer", "scheduler", "generator", "torch_rng", "history",
               "best_loss", "best_epoch", "best_state")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, unsafe or of another kind."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding objects other than tensors and plain values (it could run code)."""


# --- Plain types ---------------------------------------------------------------------------------


def to_plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` as tensors and plain Python values only, loadable with ``weights_only=True``.

    numpy arrays become tensors, numpy scalars Python numbers, paths strings; tensors are
    detached and moved to the CPU. Anything else (a settings object, a DataFrame) is refused with
    its place in the structure named: convert it (``dataclasses.asdict``, ``to_dict``) first.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value).copy())
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (torch.Size, torch.dtype, torch.device)):
        return value
    if isinstance(value, Mapping):
        plain = {to_plain(key, f"{where} key"): to_plain(item, f"{where}[{key!r}]") for key, item in value.items()}
        return OrderedDict(plain) if isinstance(value, OrderedDict) else plain
    if isinstance(value, (list, tuple)):
        items = [to_plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}: a checkpoint may hold "
                    f"only tensors, numbers, strings, lists and dicts (convert it to plain types first)")


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


# --- Saving and loading --------------------------------------------------------------------------


def save(path: str | os.PathLike, payload: Mapping) -> None:
    """Write ``payload`` (converted by ``to_plain``) atomically to ``path``."""
    plain = to_plain(payload, Path(path).name)
    with atomic_path(path) as tmp:
        torch.save(plain, tmp)


def load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load ``path`` with ``weights_only=True`` onto the CPU; never runs code from the file.

    Raises ``UnsafeCheckpointError`` (naming the file and the objects it would build) for a file
    holding anything but tensors and plain values, ``CheckpointError`` for a missing or
    unreadable one.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            names = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
        except Exception:  # noqa: BLE001 - only used to improve the message
            names = []
        objects = f" ({', '.join(names[:5])})" if names else ""
        raise UnsafeCheckpointError(
            f"refusing to load {what} {path}: it holds objects other than tensors and plain values{objects}, "
            f"and loading them could run arbitrary code. sonoflow never unpickles such files; re-save it as a plain "
            f"state dict (torch.save(model.state_dict(), ...)) on a machine you trust") from None
    except Exception as error:  # noqa: BLE001 - truncated, not a torch file, ...
        raise CheckpointError(f"cannot read {what} {path}: {type(error).__name__}: {error}") from error


def _require(checkpoint: Any, keys: Sequence[str], path, what: str) -> dict:
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a sonoflow {what}: it holds a {type(checkpoint).__name__}, not a dict")
    missing = [key for key in keys if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is not a sonoflow {what}: it lacks {', '.join(missing)}")
    return checkpoint


def state_dict_of(loaded: Any, path=None) -> dict[str, torch.Tensor]:
    """The state dict in a loaded weights file or checkpoint (bare, or under a usual key)."""
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            return loaded[key]
    if isinstance(loaded, dict):
        return loaded
    raise CheckpointError(f"{path or 'weights'}: not a state dict but a {type(loaded).__name__}")


def load_state_dict(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """A weights file's (or any checkpoint's) state dict: pretrained weights and init_from.
    ``.safetensors`` files (the Hugging Face cache's) hold tensors only and are read as such."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return state_dict_of(load(path, what), path)


# Classifier: best.pt, read by init_from, cam and predict.
def save_classifier(path: str | os.PathLike, model: nn.Module, *, model_name: str, labels: Sequence[str],
                    settings: Mapping, in_channels: int, best_epoch: int) -> None:
    save(path, {"model": state_dict_cpu(model), "model_name": model_name, "labels": list(labels),
                "settings": dict(settings), "in_channels": int(in_channels), "best_epoch": int(best_epoch)})


def load_classifier(path: str | os.PathLike) -> dict:
    return _require(load(path, "classifier checkpoint"), CLASSIFIER_KEYS, path, "classifier checkpoint")


# Resume state (sonoflow.loop): fold_K.resume.pt next to a classifier fold's folder, <name>.resume.pt next to a
# segmenter's, while it trains.
def save_resume_state(path: str | os.PathLike, state: Mapping) -> None:
    save(path, state)


def load_resume_state(path: str | os.PathLike) -> dict:
    return _require(load(path, "resume state"), RESUME_KEYS, path, "resume state")


# Segmenter: results/segment/<name>/unet.pt.
def save_segmenter(path: str | os.PathLike, model: nn.Module, *, settings: Mapping, best_epoch: int,
                   patients: Mapping[str, Sequence[str]]) -> None:
    save(path, {"model": state_dict_cpu(model), "settings": dict(settings), "best_epoch": int(best_epoch),
                "patients": {part: sorted(map(str, ids)) for part, ids in patients.items()}})


def load_segmenter(path: str | os.PathLike) -> dict:
    return _require(load(path, "segmenter checkpoint"), SEGMENTER_KEYS, path, "segmenter checkpoint")
