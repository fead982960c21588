"""Small file helpers shared by every stage.

Every output is written to a temporary name in the same folder and renamed into place, so a
killed job never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A SIGKILL mid-write leaves only a hidden temporary file, never a complete-looking ``path``;
    the next successful write of ``path`` removes such leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.name}.", suffix if suffix is not None else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the result the permissions a plain open() would.
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
        for leftover in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
            leftover.unlink(missing_ok=True)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove what killed writers of ``path`` left next to it: hidden ``.<name>.*`` temporary
    files and folders (from ``atomic_path`` and ``atomic_dir``). Only the writer of ``path`` may
    call this (Snakemake runs one job per output), so nothing live is removed. Returns them."""
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``path``; swap it in as ``path`` only on success.

    ``path`` is never seen half written: until the swap it is the old folder (or absent). A
    folder left by a killed writer (``.<name>.XXXX``) is removed when the next writer starts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes it private
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array))


def load_npy(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Load an array memory-mapped unless asked otherwise. Copy-on-write: the file never changes,
    and the array is writable in memory, so torch takes it without its non-writable-array warning
    (pages are copied only if something writes to them, which nothing does)."""
    return np.load(path, mmap_mode="c" if mmap else None)


def save_csv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def save_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


class FileFormatError(ValueError):
    """A file that passes between stages is not what its reader expects (the message names it)."""


def read_json_object(path: str | os.PathLike, what: str) -> dict:
    """A JSON file holding one object (a dict), or a ``FileFormatError`` naming the file and ``what``
    it should have been (e.g. 'a splits file')."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FileFormatError(f"{path} is not {what}: not JSON ({error})") from error
    if not isinstance(value, dict):
        raise FileFormatError(f"{path} is not {what}: it holds a JSON {type(value).__name__}, not an object")
    return value


def save_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


DECIMALS = 3


def for_people(table: pd.DataFrame, decimals: int = DECIMALS) -> pd.DataFrame:
    """A table as written for people: numbers rounded to ``decimals`` (no 0.9999999999999999), and
    p-values (columns ending in ``_p`` or named ``delong_p_vs_best``) below the last shown digit
    written as ``<0.001`` rather than a misleading 0. For tables that nothing reads at more
    precision (headline, folds, comparisons, readers, CAM and segmentation summaries); tables
    other jobs compute from (predictions, per-fold CAM quality) keep full precision."""
    out = table.copy()
    for column in out.columns:
        if not pd.api.types.is_float_dtype(out[column]):
            continue
        values = out[column].round(decimals)
        if column.endswith("_p") or column == "delong_p_vs_best":
            floor = 10.0 ** -decimals
            shown = values.map(lambda v: "" if pd.isna(v) else f"{v:.{decimals}f}")
            values = shown.where(~(out[column] < floor), f"<{floor:.{decimals}f}")
        out[column] = values
    return out
