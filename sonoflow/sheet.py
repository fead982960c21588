"""The sample sheet: reading, validation before any job runs, and stable shards.

Checks run cheapest first (columns, ids, labels, files) and the media probe last, with a
persistent cache so that an unchanged file is probed once, ever. Every row's files are probed
even when other columns are wrong: every problem is reported with the line of the sheet it is
on, all of them in one error, in line order.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from sonoflow.media import MediaError, MediaInfo, SUPPORTED_EXTENSIONS, media_kind, probe

REQUIRED_COLUMNS = ["patient_id", "item_id", "path", "label"]
OPTIONAL_COLUMNS = ["mask", "split"]
SPLIT_VALUES = {"", "train", "test"}
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # item ids name files: keep them plain
MAX_REPORTED = 20
# The probe cache's table, named by the probe's version: results of an older probe (which, e.g.,
# passed DICOM files without pixel data) are never reused.
PROBE_TABLE = "probe_v2"


class SheetError(ValueError):
    """The sample sheet cannot be used; the message names every offending line."""


def _problems_error(sheet_name: str, problems: list[str]) -> SheetError:
    shown = problems[:MAX_REPORTED]
    more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return SheetError(f"{len(problems)} problem(s) in {sheet_name}:\n" + "\n".join(shown) + more)


def _resolve(value: str, base_dir: Path) -> str:
    if not value:
        return ""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


UTF8_HELP = ("save the sheet as UTF-8 (Excel: Save As > 'CSV UTF-8 (Comma delimited)'; LibreOffice: "
             "'Edit filter settings' > 'Unicode (UTF-8)'; or: iconv -f WINDOWS-1252 -t UTF-8 old.csv > new.csv)")


def sheet_text(path: str | os.PathLike) -> tuple[str, list[str]]:
    """The sheet's text and a problem per line that is not UTF-8 (a byte-order mark is allowed).

    Such lines are not guessed into another encoding (that could silently garble ids and
    paths): they are read with the bad bytes replaced by U+FFFD, so that every other check still
    runs and reports in the same message, and each is named with its bytes and how to fix it.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    problems = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            near = line[max(error.start - 20, 0) : error.start + 20].decode("utf-8", "replace").strip()
            problems.append(f"{Path(path).name} line {number}: not UTF-8 text (byte {line[error.start]:#04x} at "
                            f"column {error.start + 1}, near {near!r}); {UTF8_HELP}")
    return data.decode("utf-8-sig", errors="replace"), problems


def read_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV sheet (UTF-8) as strings; add `line` (as the user sees it) and absolute paths."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"sample sheet not found: {path}")
    text, encoding_problems = sheet_text(path)
    header = text.split("\n", 1)[0]
    separator = "\t" if path.suffix.lower() in {".tsv", ".tab"} or "\t" in header else ","
    try:
        table = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise SheetError(f"sample sheet {path} is empty") from None
    table.columns = [str(column).strip() for column in table.columns]
    table = table.apply(lambda column: column.str.strip())
    table.insert(0, "line", range(2, len(table) + 2))  # the header is line 1
    table = table[(table.drop(columns="line") != "").any(axis=1)]  # blank lines are not rows
    table = resolve_paths(table, path.parent)
    table.attrs["sheet_problems"] = encoding_problems  # reported by validate_sheet with all others
    return table


def resolve_paths(table: pd.DataFrame, base_dir: str | os.PathLike) -> pd.DataFrame:
    """Make `path` and every `mask` path absolute, relative to ``base_dir``."""
    base_dir = Path(base_dir).resolve()
    table = table.copy()
    for column in OPTIONAL_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    if "line" not in table.columns:
        table.insert(0, "line", range(2, len(table) + 2))
    if "path" in table.columns:
        table["path"] = [_resolve(value, base_dir) for value in table["path"]]
    table["mask"] = [";".join(_resolve(p.strip(), base_dir) for p in value.split(";") if p.strip()) for value in table["mask"]]
    return table


def relative_paths(table: pd.DataFrame, folder: str | os.PathLike, *, inside_only: bool = False) -> pd.DataFrame:
    """`path` and `mask` relative to ``folder``. With ``inside_only``, paths outside it stay absolute:
    the workflow keys jobs on paths relative to its working directory, so a moved or copied
    working directory (with its results and demo data) is not stale, while outside data is."""
    folder = Path(folder).resolve()

    def rel(value: str) -> str:
        if inside_only and not Path(value).resolve().is_relative_to(folder):
            return value
        return os.path.relpath(value, folder)

    table = table.copy()
    for column in ("path", "mask"):
        table[column] = [";".join(rel(p) for p in value.split(";") if p) for value in table[column]]
    return table


def _by_line(problems: list[str]) -> list[str]:
    """Problems in the order of the first sheet line each names (stable), as a reader goes."""
    def first_line(problem: str) -> int:
        match = re.search(r" lines? (\d+)", problem)
        return int(match.group(1)) if match else 0

    return sorted(problems, key=first_line)


def _where(row, sheet_name: str) -> str:
    item = f" (item {row.item_id!r})" if getattr(row, "item_id", "") else ""
    return f"{sheet_name} line {row.line}{item}"


def validate_sheet(
    table: pd.DataFrame,
    *,
    labels: Sequence[str] | None,
    sheet_name: str = "samples",
    probe_cache: "ProbeCache | None" = None,
    require_labels: bool = True,
    several_labels_per_patient: bool = False,
) -> pd.DataFrame:
    """Check every row; return the table with `kind`, `width`, `height`, `n_frames`, `fps`.

    ``require_labels=False`` (new cases to predict): the label column may be missing or empty;
    a label that is given must still be known and the same for all items of a patient.
    ``several_labels_per_patient`` (evaluate.unit item or auto): a patient's items may carry
    different labels (a lesion and normal tissue); they are then scored per item.
    """
    read_problems = list(table.attrs.get("sheet_problems", []))  # from reading the file (encoding)
    if table.empty:
        raise SheetError("\n".join([f"{sheet_name} has no rows", *read_problems]))
    if not require_labels and "label" not in table.columns:
        table = table.assign(label="")
    required = REQUIRED_COLUMNS if require_labels else [c for c in REQUIRED_COLUMNS if c != "label"]
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise SheetError("\n".join([f"{sheet_name} lacks column(s) {missing}; required: {REQUIRED_COLUMNS}, "
                                     f"optional: {OPTIONAL_COLUMNS}", *read_problems]))
    table = resolve_paths(table, Path.cwd()) if "line" not in table.columns else table.copy()
    for column in OPTIONAL_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    problems: list[str] = read_problems
    rows = list(table.itertuples(index=False))

    for row in rows:
        empty = [column for column in required if not getattr(row, column)]
        if empty:
            problems.append(f"{_where(row, sheet_name)}: empty {', '.join(empty)}")
        elif not ITEM_ID.match(row.item_id):
            problems.append(f"{_where(row, sheet_name)}: item_id may hold only letters, digits, '.', '_' and '-'")

    lines_by_id = table.groupby("item_id")["line"].apply(list)
    for item_id, lines in lines_by_id[lines_by_id.map(len) > 1].items():
        if item_id:
            problems.append(f"{sheet_name} lines {', '.join(map(str, lines))}: duplicate item_id {item_id!r}")

    if labels is not None:
        allowed = set(labels)
        for row in rows:
            if row.label and row.label not in allowed:
                problems.append(f"{_where(row, sheet_name)}: unknown label {row.label!r}; allowed: {', '.join(labels)}")

    labelled = table if not require_labels else table[table["label"] != ""]
    per_patient = labelled.groupby("patient_id")["label"].unique()
    conflicting = per_patient.iloc[:0] if several_labels_per_patient else per_patient[per_patient.map(len) > 1]
    for patient, patient_labels in conflicting.items():
        lines = labelled.loc[labelled["patient_id"] == patient, "line"].tolist()
        problems.append(f"{sheet_name} lines {', '.join(map(str, lines))}: patient {patient!r} has several labels "
                        f"{sorted(patient_labels)} (allowed with evaluate.unit item or auto: scored per item)")

    for row in rows:
        if row.split not in SPLIT_VALUES:
            problems.append(f"{_where(row, sheet_name)}: split must be empty, 'train' or 'test', not {row.split!r}")

    # Every row's files are checked even when other columns are wrong, so that one message
    # lists everything; the probe (header, first frame; cached) reads only files that exist.
    files_ok: dict[str, bool] = {}
    for row in rows:
        for role, value in [("file", row.path)] + [("mask", p) for p in row.mask.split(";") if p]:
            if not value:
                continue
            if Path(value).suffix.lower() not in SUPPORTED_EXTENSIONS:
                problems.append(f"{_where(row, sheet_name)}: unsupported {role} type {Path(value).suffix or '(none)'!r} "
                                f"({value}); supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
                files_ok[value] = False
            elif not os.path.isfile(value):
                problems.append(f"{_where(row, sheet_name)}: {role} not found: {value}")
                files_ok[value] = False
            else:
                files_ok[value] = True

    cache = probe_cache or ProbeCache(None)
    infos = cache.probe_many([path for path, ok in files_ok.items() if ok])
    for row in rows:
        info = infos.get(row.path)
        if isinstance(info, MediaError):
            problems.append(f"{_where(row, sheet_name)}: {info}")
        masks = [mask for mask in row.mask.split(";") if mask]
        if not masks or not files_ok.get(row.path):
            continue
        # A mask outlines the lesion of one still image: not of a clip, nor of a multi-frame DICOM.
        if media_kind(row.path) == "video":
            problems.append(f"{_where(row, sheet_name)}: a mask is only allowed for an image, not a video")
            continue
        if isinstance(info, MediaInfo) and info.n_frames > 1:
            problems.append(f"{_where(row, sheet_name)}: a mask is only allowed for an image of one frame, "
                            f"not a DICOM of {info.n_frames} frames ({row.path})")
            continue
        for mask in masks:
            mask_info = infos.get(mask)
            if isinstance(mask_info, MediaError):
                problems.append(f"{_where(row, sheet_name)}: mask {mask}: {mask_info}")
            elif isinstance(mask_info, MediaInfo) and isinstance(info, MediaInfo) \
                    and (mask_info.width, mask_info.height) != (info.width, info.height):
                problems.append(f"{_where(row, sheet_name)}: mask {mask} is {mask_info.width}x{mask_info.height}, "
                                f"the image {info.width}x{info.height}")
    if problems:
        raise _problems_error(sheet_name, _by_line(problems))
    for field in ("kind", "width", "height", "n_frames", "fps"):
        table[field] = [getattr(infos[path], field) for path in table["path"]]
    return table


class ProbeCache:
    """media.probe results in SQLite, keyed by (path, size, mtime): a changed file is re-probed.

    ``path=None`` keeps nothing between calls. Failures are cached too (same key), so a broken
    file is not re-decoded on every run, yet is probed again as soon as it is replaced.
    """

    def __init__(self, path: str | os.PathLike | None, threads: int = 8):
        self.path = Path(path) if path else None
        self.threads = threads
        self.probes = 0  # how many files were actually probed (for tests and benchmarks)

    def _connect(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                           f"result TEXT)")
        return connection

    def probe_many(self, paths: Iterable[str]) -> dict[str, MediaInfo | MediaError]:
        paths = list(dict.fromkeys(paths))
        stats = {}
        for path in paths:
            stat = os.stat(path)
            stats[path] = (stat.st_size, stat.st_mtime_ns)
        results: dict[str, MediaInfo | MediaError] = {}
        connection = self._connect()
        try:
            if connection is not None:
                for path, size, mtime, result in connection.execute(f"SELECT path, size, mtime, result FROM {PROBE_TABLE}"):
                    if path in stats and stats[path] == (size, mtime):
                        results[path] = _decode(result)
            todo = [path for path in paths if path not in results]
            if todo:
                with ThreadPoolExecutor(self.threads) as pool:  # I/O bound; OpenCV and zlib release the GIL
                    for path, result in zip(todo, pool.map(_safe_probe, todo)):
                        results[path] = result
                self.probes += len(todo)
                if connection is not None:
                    with connection:
                        connection.executemany(f"INSERT OR REPLACE INTO {PROBE_TABLE} VALUES (?, ?, ?, ?)",
                                               [(p, *stats[p], _encode(results[p])) for p in todo])
        finally:
            if connection is not None:
                connection.close()
        return results


def _safe_probe(path: str) -> MediaInfo | MediaError:
    try:
        return probe(path)
    except MediaError as error:
        return error
    except Exception as error:  # noqa: BLE001 - any decoder failure means "unreadable"
        return MediaError(f"cannot read {path}: {error}")


def _encode(result: MediaInfo | MediaError) -> str:
    return json.dumps({"error": str(result)} if isinstance(result, MediaError) else result.to_dict())


def _decode(text: str) -> MediaInfo | MediaError:
    value = json.loads(text)
    return MediaError(value["error"]) if "error" in value else MediaInfo(**value)


def sheet_digest(table: pd.DataFrame, columns: Sequence[str] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS) -> dict:
    """SHA-256 of the sheet's rows (as CSV, in item_id order) with its row and patient counts."""
    rows = table[list(columns)].sort_values("item_id", kind="stable")
    return {"sha256": hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest(), "rows": len(rows),
            "patients": int(rows["patient_id"].nunique())}


def shard_of(item_id: str, n_shards: int) -> int:
    """Stable shard of an item: the same on every machine, run and Python version."""
    digest = hashlib.sha1(str(item_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def add_shards(table: pd.DataFrame, n_shards: int) -> pd.DataFrame:
    table = table.copy()
    table["shard"] = [shard_of(item_id, n_shards) for item_id in table["item_id"]]
    return table
