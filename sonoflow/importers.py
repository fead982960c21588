"""Sample sheets from common data layouts. Importers only read the source folder.

    python -m sonoflow.importers busi Dataset_BUSI_with_GT -o busi.csv
    python -m sonoflow.importers class_folders clips/ -o clips.csv
    python -m sonoflow.importers csv diagnosis.csv -o ddti.csv --columns item_id=0,label=2 \\
        --path-template 'images/{item_id}.png' --patient-pattern '^([^_]+)_'
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from sonoflow.io import save_csv
from sonoflow.media import SUPPORTED_EXTENSIONS
from sonoflow.sheet import read_sheet, relative_paths, resolve_paths

log = logging.getLogger("sonoflow.importers")
SHEET_COLUMNS = ["patient_id", "item_id", "path", "label", "mask", "split"]
MASK_SUFFIX = re.compile(r"_mask(_\d+)?$")


def safe_id(text: str) -> str:
    """An id usable in file names: characters outside [A-Za-z0-9._-] become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return cleaned or "item"


def _unique(ids: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for item_id in ids:
        count = seen.get(item_id, 0)
        seen[item_id] = count + 1
        out.append(item_id if count == 0 else f"{item_id}-{count + 1}")
    return out


def _media_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in SUPPORTED_EXTENSIONS)


def _sheet(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=SHEET_COLUMNS).fillna("")
    table["item_id"] = _unique(table["item_id"].tolist())
    return table


def import_busi(folder: str | os.PathLike) -> pd.DataFrame:
    """BUSI layout: ``<class>/<name>.png`` with ``<name>_mask.png``, ``<name>_mask_1.png``, ...

    BUSI has no patient ids, so every image is its own patient. Images of one patient may be in
    the set more than once; a patient-level evaluation cannot be guaranteed on such data.
    """
    folder = Path(folder)
    rows = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _media_files(class_dir)
        masks: dict[str, list[str]] = {}
        for path in files:
            match = MASK_SUFFIX.search(path.stem)
            if match:
                masks.setdefault(path.stem[: match.start()], []).append(str(path.resolve()))
        for path in files:
            if MASK_SUFFIX.search(path.stem):
                continue
            item_id = safe_id(f"{class_dir.name}_{path.stem}")
            rows.append({"patient_id": item_id, "item_id": item_id, "path": str(path.resolve()),
                         "label": class_dir.name, "mask": ";".join(sorted(masks.get(path.stem, []))), "split": ""})
    if not rows:
        raise ValueError(f"no images found in the BUSI layout under {folder}")
    return _sheet(rows)


def import_class_folders(folder: str | os.PathLike) -> pd.DataFrame:
    """``<class>/<file>`` (patient = file name) or ``<class>/<patient>/<file>``; a ``<name>_mask``
    file beside an image is its mask."""
    folder = Path(folder)
    rows = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        groups = [(None, class_dir)] + [(p.name, p) for p in sorted(class_dir.iterdir())
                                        if p.is_dir() and not p.name.startswith(".")]
        for patient, directory in groups:
            files = _media_files(directory)
            by_stem = {p.stem: p for p in files}
            for path in files:
                if MASK_SUFFIX.search(path.stem):
                    continue
                mask = by_stem.get(f"{path.stem}_mask")
                pid = safe_id(patient if patient else path.stem)
                rows.append({"patient_id": pid, "item_id": safe_id(f"{class_dir.name}_{pid}_{path.stem}"),
                             "path": str(path.resolve()), "label": class_dir.name,
                             "mask": str(mask.resolve()) if mask else "", "split": ""})
    if not rows:
        raise ValueError(f"no media files found in class folders under {folder}")
    return _sheet(rows)


def import_csv(
    csv_path: str | os.PathLike,
    columns: Mapping[str, str],
    *,
    base_dir: str | os.PathLike | None = None,
    label_map: Mapping[str, str] | None = None,
    path_template: str = "",
    patient_pattern: str = "",
    drop_unlabelled: bool = False,
    header: bool = True,
) -> pd.DataFrame:
    """A table with other column names. ``columns`` maps sonoflow names to the file's columns
    (names, or 0-based positions when ``header`` is False). ``path_template`` builds `path` from
    the mapped fields (e.g. ``images/{item_id}.png``); ``patient_pattern`` is a regex whose first
    group, applied to the item id, is the patient id (e.g. ``^(\\d+)_`` for DDTI's case number)."""
    csv_path = Path(csv_path)
    base = Path(base_dir) if base_dir else csv_path.parent
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, header=0 if header else None)
    raw.columns = [str(c) for c in raw.columns]
    missing = [source for source in columns.values() if str(source) not in raw.columns]
    if missing:
        raise ValueError(f"{csv_path} has no column(s) {missing}; it has {list(raw.columns)}")
    table = pd.DataFrame({ours: raw[str(theirs)].str.strip() for ours, theirs in columns.items()})
    if label_map:
        table["label"] = table["label"].map(lambda value: label_map.get(value, value))
    if drop_unlabelled:
        unlabelled = table["label"] == ""
        if unlabelled.any():
            log.info("dropped %d unlabelled rows of %s", int(unlabelled.sum()), csv_path)
        table = table[~unlabelled]
    if patient_pattern:
        pattern = re.compile(patient_pattern)
        found = table["item_id"].map(lambda value: (m.group(1) if (m := pattern.search(value)) else None))
        if found.isna().any():
            unmatched = table.loc[found.isna(), "item_id"].head(5).tolist()
            raise ValueError(f"patient_pattern {patient_pattern!r} does not match item(s) {unmatched}")
        table["patient_id"] = found
    if path_template:
        table["path"] = [path_template.format(**row) for row in table.to_dict("records")]
    for column in ("path", "mask"):
        if column in table.columns:
            table[column] = [";".join(str((base / p).resolve()) for p in value.split(";") if p) for value in table[column]]
    for column in SHEET_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    table["item_id"] = table["item_id"].map(safe_id)
    return _sheet(table[SHEET_COLUMNS].to_dict("records"))


def load_layout(spec: Mapping, base_dir: str | os.PathLike = ".") -> pd.DataFrame:
    """A sheet from the config's ``data`` block: layout sheet | busi | class_folders | csv."""
    base = Path(base_dir)
    layout = spec.get("layout")
    if layout == "sheet":
        return read_sheet(base / spec["sheet"])
    if layout == "busi":
        return resolve_paths(import_busi(base / spec["folder"]), base)
    if layout == "class_folders":
        return resolve_paths(import_class_folders(base / spec["folder"]), base)
    if layout == "csv":
        table = import_csv(base / spec["csv"], spec.get("columns") or {},
                           base_dir=base / (spec.get("folder") or Path(spec["csv"]).parent),
                           label_map=spec.get("label_map") or {}, path_template=spec.get("path_template") or "",
                           patient_pattern=spec.get("patient_pattern") or "",
                           drop_unlabelled=bool(spec.get("drop_unlabelled")), header=spec.get("header", True))
        return resolve_paths(table, base)
    raise ValueError(f"unknown data layout {layout!r}; use sheet, busi, class_folders or csv")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a sonoflow sample sheet from a data layout.")
    parser.add_argument("layout", choices=["busi", "class_folders", "csv"])
    parser.add_argument("source", type=Path, help="folder (busi, class_folders) or table (csv)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--columns", default="", help="csv: ours=theirs pairs, e.g. patient_id=Case,label=dx")
    parser.add_argument("--label-map", default="", help="csv: value=label pairs, e.g. 0=benign,1=malignant")
    parser.add_argument("--path-template", default="")
    parser.add_argument("--patient-pattern", default="")
    parser.add_argument("--no-header", action="store_true", help="csv: the table has no header; columns are 0-based positions")
    parser.add_argument("--drop-unlabelled", action="store_true")
    args = parser.parse_args(argv)
    pairs = lambda text: dict(item.split("=", 1) for item in text.split(",") if item)  # noqa: E731
    if args.layout == "busi":
        table = import_busi(args.source)
    elif args.layout == "class_folders":
        table = import_class_folders(args.source)
    else:
        table = import_csv(args.source, pairs(args.columns), label_map=pairs(args.label_map),
                           path_template=args.path_template, patient_pattern=args.patient_pattern,
                           drop_unlabelled=args.drop_unlabelled, header=not args.no_header)
    save_csv(args.output, relative_paths(table, args.output.resolve().parent))
    print(f"{len(table)} items of {table['patient_id'].nunique()} patients -> {args.output}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
