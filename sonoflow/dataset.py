"""The ingested data set as one table over per-shard, memory-mapped arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

SHARD_PREFIX = "shard_"


def shard_name(path: str | os.PathLike) -> str:
    """'results/ingest/shard_03/frames.csv' (or its folder) -> '03', the workflow's wildcard."""
    path = Path(path)
    name = path.name if path.suffix == "" else path.parent.name
    if not name.startswith(SHARD_PREFIX):
        raise ValueError(f"not a shard folder: {path}")
    return name[len(SHARD_PREFIX) :]


def read_frame_table(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(
        path,
        dtype={"shard": str, "item_id": str, "patient_id": str, "label": str, "split": str, "scanner": str},
        keep_default_na=False,
    )


def combine_frame_tables(tables: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-shard frame tables; `shard` + `row` address a frame in the arrays."""
    parts = []
    for path in tables:
        part = read_frame_table(path)
        part.insert(0, "shard", shard_name(path))
        parts.append(part)
    if not parts:
        raise ValueError("no frame tables given")
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["patient_id", "item_id", "frame_index"], kind="stable").reset_index(drop=True)


class FrameStore:
    """Frames addressed by (shard, row), read from memory-mapped per-shard .npy files.

    Training reads these uint8 arrays, never image files: every frame was decoded once, at ingest.
    """

    channels = 1

    def __init__(self, arrays: Mapping[str, str | os.PathLike]):
        # shard name -> .npy path; opened lazily and kept open (memory maps are cheap).
        self._paths = {str(shard): Path(path) for shard, path in arrays.items()}
        self._open: dict[str, np.ndarray] = {}

    @classmethod
    def from_paths(cls, paths: Iterable[str | os.PathLike]) -> "FrameStore":
        return cls({shard_name(path): path for path in paths})

    def array(self, shard: str) -> np.ndarray:
        if shard not in self._open:
            if shard not in self._paths:
                raise KeyError(f"no array for shard {shard!r}")
            self._open[shard] = np.load(self._paths[shard], mmap_mode="r")
        return self._open[shard]

    def gather(self, frames: pd.DataFrame) -> np.ndarray:
        """The frames of ``frames`` (columns shard, row) as one (N, H, W) uint8 array, in order."""
        if frames.empty:
            raise ValueError("no frames selected")
        out: np.ndarray | None = None
        positions = np.arange(len(frames))
        for shard, index in frames.groupby("shard", sort=False).indices.items():
            source = self.array(str(shard))
            if out is None:
                out = np.empty((len(frames), *source.shape[1:]), dtype=source.dtype)
            rows = frames["row"].to_numpy()[index]
            # Sorted reads are sequential on disk; scatter back to the requested order.
            order = np.argsort(rows, kind="stable")
            out[positions[index][order]] = source[rows[order]]
        return out


# The classifier's input modes and the per-shard arrays each one stacks as channels.
INPUT_CHANNELS = {"full": ("full",), "roi": ("roi",), "both": ("full", "roi")}


class StackedStore:
    """Several views of the same frames (e.g. full frame and lesion ROI) as channels."""

    def __init__(self, stores: list[FrameStore]):
        self.stores = stores
        self.channels = len(stores)

    def gather(self, frames: pd.DataFrame) -> np.ndarray:
        """(N, C, H, W) uint8, one channel per store."""
        return np.stack([store.gather(frames) for store in self.stores], axis=1)


def classifier_store(mode: str, arrays: Mapping[str, Iterable[str | os.PathLike]]) -> FrameStore | StackedStore:
    """The frames a classifier with input ``mode`` reads: ``arrays`` maps 'full'/'roi' to the
    per-shard .npy files (denoised frames, ROI crops)."""
    if mode not in INPUT_CHANNELS:
        raise ValueError(f"unknown classifier input {mode!r}; choose one of {', '.join(INPUT_CHANNELS)}")
    stores = [FrameStore.from_paths(arrays[name]) for name in INPUT_CHANNELS[mode]]
    return stores[0] if len(stores) == 1 else StackedStore(stores)
