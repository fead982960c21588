"""What a reader gets besides the figures: the run manifest (enough to tell later exactly what
produced a results folder), every table people read as a small HTML page for the report, the
report's landing page, the audit's page and the predictions' page: every page of HTML sonoflow
writes is made here."""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

PACKAGES = ("sonoflow", "torch", "torchvision", "timm", "segmentation-models-pytorch", "grad-cam", "snakemake",
            "scikit-learn", "numpy", "pandas", "opencv-python-headless", "pydicom", "scikit-image")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(folder: str | os.PathLike) -> dict:
    """Commit of the workflow's checkout and whether it had uncommitted changes; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def file_digest(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 over the contents of the files, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def run_manifest(config: Mapping, workflow_dir: str | os.PathLike, sheet: Mapping,
                 arrays: Iterable[str | os.PathLike]) -> dict:
    """Config, package versions, git revision, the sample sheet's digest (``sheet``: from
    sonoflow.sheet.sheet_digest) and a hash of the ingested arrays (the pixels every model saw)."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": dict(config),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git": git_revision(workflow_dir),
        "sample_sheet": dict(sheet),
        "data_sha256": file_digest(sorted(str(Path(p)) for p in arrays)),
    }


# --- Tables people read: small self-contained HTML pages for snakemake --report -------------------
#
# Snakemake's report shows images and HTML inline but only links CSVs. Every table a reader looks
# at is therefore also rendered here as an HTML page (the CSV stays beside it, machine-readable):
# numbers rounded to DECIMALS, each estimate with its 95% CI in one cell, the n it rests on, and
# the binary question's operating point.

DECIMALS = 3
MISSING = "—"
# An interval whose ends coincide (e.g. 1.0 [1.0, 1.0] on a few patients) is not an interval.
DEGENERATE = "n too small for an interval"

STYLE = """
.sonoflow { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 14px; color: #222;
            max-width: 1200px; overflow-x: auto; }
.sonoflow h1 { font-size: 20px; margin: 0.2em 0 0.4em; }
.sonoflow h2 { font-size: 16px; margin: 1.2em 0 0.4em; border-bottom: 1px solid #ddd; padding-bottom: 2px; }
.sonoflow p, .sonoflow li { line-height: 1.4; }
.sonoflow table.sonoflow-table { border-collapse: collapse; margin: 0.3em 0 0.8em; font-size: 13px; }
.sonoflow table.sonoflow-table th, .sonoflow table.sonoflow-table td { border: 1px solid #ccc; padding: 3px 8px;
            text-align: left; vertical-align: top; white-space: nowrap; }
.sonoflow table.sonoflow-table th { background: #f0f3f7; }
.sonoflow table.sonoflow-table tr:nth-child(even) td { background: #fafbfc; }
.sonoflow .note { color: #555; font-size: 12px; }
.sonoflow .banner { background: #fff4d6; border: 1px solid #e0b84a; padding: 6px 10px; margin: 0.5em 0; font-weight: 600; }
.sonoflow .warnings li { color: #8a4b00; }
.sonoflow .flag { color: #b00020; }
"""


def _is_missing(value) -> bool:
    try:
        return value is None or (not isinstance(value, str) and bool(pd.isna(value)))
    except (TypeError, ValueError):
        return False


def format_number(value, p_value: bool = False) -> str:
    """A number as people read it: at most DECIMALS decimals, integers as integers, booleans as
    yes/no, a p-value below 10^-DECIMALS as '<0.001', missing values as a dash."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if np.isinf(value):
            return "∞" if value > 0 else "-∞"
        if p_value and 0 <= value < 10 ** -DECIMALS:
            return f"<{10 ** -DECIMALS:.{DECIMALS}f}"
        if value.is_integer() and abs(value) >= 10 ** DECIMALS:
            return str(int(value))
        text = f"{value:.{DECIMALS}f}"
        return "0.000" if text == "-0.000" else text
    return str(value)


def format_estimate(value, low, high) -> str:
    """'0.912 [0.850, 0.960]'; the bare estimate when there is no interval; an interval whose
    bounds coincide once rounded flagged ‡ (see DEGENERATE)."""
    if _is_missing(value):
        return MISSING
    if _is_missing(low) or _is_missing(high):
        return format_number(value)
    low, high = format_number(low), format_number(high)
    text = f"{format_number(value)} [{low}, {high}]"
    return f"{text} ‡" if low == high else text  # coinciding as people read them


def _is_p_value(column: str) -> bool:
    return column == "p" or column.endswith("_p") or column.startswith("p_") or "_p_" in column


COUNTS = ("patients", "frames", "cases", "images", "items", "pairs", "crossing", "blank_cams")


def _is_count(column: str) -> bool:
    return column in COUNTS or column.endswith(("_images", "_frames", "_patients"))


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings people read: ``value, ci_low, ci_high`` and ``X, X_ci_low, X_ci_high``
    become one 'X [95% CI]' column, ``X_mean, X_sd`` one 'X mean ± sd' column, numbers are
    rounded to DECIMALS, p-values shown as such."""
    columns = list(table.columns)
    out = {}
    used = set()
    for column in columns:
        if column in used:
            continue
        low, high = ("ci_low", "ci_high") if column == "value" else (f"{column}_ci_low", f"{column}_ci_high")
        if low in table and high in table:
            name = "estimate [95% CI]" if column == "value" else f"{column} [95% CI]"
            out[name] = [format_estimate(v, a, b) for v, a, b in zip(table[column], table[low], table[high])]
            used |= {column, low, high}
            continue
        if column.endswith("_mean") and f"{column[:-5]}_sd" in table:
            sd = f"{column[:-5]}_sd"
            out[f"{column[:-5]} mean ± sd"] = [
                MISSING if _is_missing(m) else format_number(m) if _is_missing(s) else f"{format_number(m)} ± {format_number(s)}"
                for m, s in zip(table[column], table[sd])]
            used |= {column, sd}
            continue
        p_value = _is_p_value(column)
        values = table[column]
        if _is_count(column) and pd.api.types.is_float_dtype(values) and values.dropna().map(float.is_integer).all():
            values = values.astype("Int64")  # a count with gaps (e.g. the mean and sd rows) reads back as float
        out[column] = [format_number(value, p_value) for value in values]
        used.add(column)
    return pd.DataFrame(out, index=table.index, columns=list(out)).reset_index(drop=True)


def table_html(table: pd.DataFrame, empty: str = "no rows") -> str:
    """An HTML table of ``readable(table)`` (escaped), or a one-line note when it has no rows."""
    if table.empty:
        return f'<p class="note">{html.escape(empty)}</p>'
    shown = readable(table)
    body = shown.to_html(index=False, escape=True, border=0, classes="sonoflow-table", na_rep=MISSING)
    if shown.apply(lambda column: column.astype(str).str.endswith(" ‡")).to_numpy().any():
        body += f'<p class="note flag">‡ lower and upper bound coincide: {DEGENERATE}.</p>'
    return body


def html_page(title: str, sections: Sequence[tuple[str, str]], intro: str = "") -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external files): a title, an
    optional intro paragraph, then (heading, html body) sections. Everything sits in one
    ``div.sonoflow``, so the page can also be embedded in the report's landing page without its
    styles touching the report's own."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{intro}</p>")
    for heading, body in sections:
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(body)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title></head>\n<body>\n<style>{STYLE}</style>\n"
            f"<div class=\"sonoflow\">\n{chr(10).join(parts)}\n</div>\n</body></html>\n")


def operating_point(thresholds: Mapping | None) -> str:
    """The binary question's decision rule per level (from evaluate's thresholds.json), or that
    the call is multi-class (argmax)."""
    thresholds = thresholds or {}
    positive = list(thresholds.get("positive") or [])
    if not positive:
        return "multi-class call: the class with the highest probability (argmax); metrics one-vs-rest, macro means overall."
    by_level = thresholds.get("thresholds") or {}
    rules = "; ".join(f"{level} level: P({' or '.join(positive)}) ≥ {format_number(value)}"
                      for level, value in by_level.items() if not _is_missing(value))
    return (f"binary question, positive = {' + '.join(positive)}; operating point chosen on the validation folds "
            f"by Youden's index and applied unchanged: {rules}.")


METHOD_MARKS = ("†", "§", "¶", "#")


def ci_method_marks(headline: pd.DataFrame) -> dict[str, str]:
    """A mark per CI method of a table: '' for the most common one, a symbol for each other, so
    that every cell says which interval it carries."""
    if "ci_method" not in headline:
        return {}
    methods = headline["ci_method"].fillna("").astype(str).value_counts().index.tolist()
    return {method: ("" if k == 0 else METHOD_MARKS[(k - 1) % len(METHOD_MARKS)]) for k, method in enumerate(methods)}


def _ci_methods_note(marks: Mapping[str, str]) -> str:
    if not marks:
        return ""
    notes = [f"{mark} {method}" if mark else f"unmarked: {method}" for method, mark in marks.items() if method]
    return "95% CI method — " + "; ".join(notes) + "."


def headline_sections(headline: pd.DataFrame, thresholds: Mapping | None = None) -> list[tuple[str, str]]:
    """A run's headline.csv as one table per part: a row per metric and class, a column per level
    ('estimate [95% CI]'), with each level's n in the column header."""
    sections = []
    extra = [c for c in headline.columns if c not in
             {"part", "level", "patients", "cases", "metric", "class", "value", "ci_low", "ci_high", "ci_method"}]
    marks = ci_method_marks(headline)
    for part, rows in headline.groupby("part", sort=False):
        columns = {}
        for level, at_level in rows.groupby("level", sort=False):
            n = f"{int(at_level['patients'].iloc[0])} patients" + (
                "" if level == "patient" else f", {int(at_level['cases'].iloc[0])} {'frames' if level == 'image' else 'cases'}")
            keyed = at_level.assign(**{"class": at_level["class"].fillna("").astype(str)}).set_index(["metric", "class"])
            methods = keyed["ci_method"].fillna("").astype(str) if "ci_method" in keyed else pd.Series("", keyed.index)
            columns[f"{level} level ({n})"] = pd.Series(
                [format_estimate(v, a, b) + (f" {marks[m]}" if marks.get(m) and not _is_missing(a) else "")
                 for v, a, b, m in zip(keyed["value"], keyed["ci_low"], keyed["ci_high"], methods)], index=keyed.index)
            for column in extra:  # e.g. a flag or a count of skipped resamples added upstream
                columns[f"{column} ({level})"] = pd.Series([format_number(v) for v in keyed[column]], index=keyed.index)
        table = pd.DataFrame(columns).fillna(MISSING).reset_index()
        table["class"] = table["class"].replace({"": "overall"})
        name = {"test": "held-out test patients, fold ensemble", "cv": "validation folds, pooled out-of-fold"}.get(part, part)
        body = table.to_html(index=False, escape=True, border=0, classes="sonoflow-table")
        if table.apply(lambda column: column.astype(str).str.contains(" ‡", regex=False)).to_numpy().any():
            body += f'<p class="note flag">‡ lower and upper bound coincide: {DEGENERATE}.</p>'
        used = {m: marks[m] for m in dict.fromkeys(rows["ci_method"].fillna("").astype(str))} if marks else {}
        body += f'<p class="note">{html.escape(_ci_methods_note(used))}</p>'
        sections.append((f"{part}: {name}", body))
    if thresholds is not None:
        sections.insert(0, ("operating point", f"<p>{html.escape(operating_point(thresholds))}</p>"))
    return sections


def _title(run: str, what: str) -> str:
    return f"{run}: {what}" if run else what


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"class": str, "label": str, "fold": str,
                                                                            "patient_id": str, "item_id": str})


def page_headline(inputs: Mapping, title: str) -> str:
    headline = _read(inputs["headline"]).fillna({"class": ""})
    from sonoflow.evaluate import read_decision

    thresholds = read_decision(inputs["thresholds"]) if inputs.get("thresholds") else None
    return html_page(f"{title}: headline", headline_sections(headline, thresholds),
                     "Estimates with their 95% confidence interval; n per level in the column header. "
                     "Full precision in the CSV beside this page.")


def page_folds(inputs: Mapping, title: str) -> str:
    folds = _read(inputs["folds"])
    sections = [(f"{level} level", table_html(rows.drop(columns="level")))
                for level, rows in folds.groupby("level", sort=False)]
    return html_page(f"{title}: validation folds", sections,
                     "One row per validation fold, then the mean and sd over folds; overall figures (macro means "
                     "over classes for a multi-class question).")


def page_leakage(inputs: Mapping, title: str) -> str:
    return html_page(f"{title}: near-duplicates across the split", [("", table_html(_read(inputs["leakage"])))],
                     "Per fold, near-duplicate item pairs that lie on two sides of the split.")


def page_table(key: str, heading: str, intro: str = "", drop: Sequence[str] = (),
               first: Sequence[str] = ()) -> Callable[[Mapping, str], str]:
    """A page of one CSV shown whole (rounded, intervals merged), the ``first`` columns first."""
    def render(inputs: Mapping, title: str) -> str:
        table = _read(inputs[key])
        table = table[[c for c in first if c in table] + [c for c in table if c not in first]]
        return html_page(_title(title, heading),
                         [("", table_html(table.drop(columns=[c for c in drop if c in table])))], intro)
    return render


def page_split(inputs: Mapping, title: str) -> str:
    """The split report as patients / items / frames per class (columns) and part (rows)."""
    table = _read(inputs["split_report"]).fillna({"fold": ""})
    table["part"] = [f"fold {fold} {part}" if fold else part for part, fold in zip(table["part"], table["fold"])]
    wide = table.pivot_table(index="part", columns="label", values=["patients", "items", "frames"], aggfunc="sum",
                             sort=False)
    labels = list(dict.fromkeys(table["label"]))
    cells = pd.DataFrame({label: [f"{int(wide.at[part, ('patients', label)])} / {int(wide.at[part, ('items', label)])}"
                                  f" / {int(wide.at[part, ('frames', label)])}" for part in wide.index]
                          for label in labels}, index=wide.index)
    cells.insert(0, "part", cells.index)
    totals = table.groupby("part", sort=False)[["patients", "items", "frames"]].sum()
    cells["all classes"] = [f"{totals.at[p, 'patients']} / {totals.at[p, 'items']} / {totals.at[p, 'frames']}"
                            for p in cells.index]
    body = cells.to_html(index=False, escape=True, border=0, classes="sonoflow-table")
    return html_page(_title(title, "split"), [("", body)],
                     "Patients / items / frames per class in the held-out test set and in the training and "
                     "validation part of every fold. No patient is in two parts.")


def dedup_counts(pairs: pd.DataFrame) -> dict:
    """How many near-duplicate pairs, items and patients, how many cross patients, and how many
    join items with different labels (a duplicate that cannot be right twice)."""
    if pairs.empty:
        return {"pairs": 0, "items": 0, "pairs across patients": 0, "pairs with different labels": 0}
    labelled = "label_a" in pairs and "label_b" in pairs
    return {"pairs": len(pairs), "items": len(set(pairs["item_a"]) | set(pairs["item_b"])),
            "pairs across patients": int(pairs["crosses_patients"].astype(str).str.lower().eq("true").sum()),
            "pairs with different labels": int((pairs["label_a"] != pairs["label_b"]).sum()) if labelled else 0}


def _key_values(values: Mapping) -> str:
    table = pd.DataFrame({"": list(values), "value": list(values.values())})
    return table.to_html(index=False, escape=True, border=0, classes="sonoflow-table", header=False)


MAX_ROWS = 200


def page_dedup(inputs: Mapping, title: str) -> str:
    pairs = _read(inputs["pairs"])
    shown = pairs.drop(columns=[c for c in pairs if c.startswith(("shard_", "row_"))])
    if "label_a" in shown and "label_b" in shown:
        shown.insert(0, "different labels", shown["label_a"] != shown["label_b"])
    shown = shown.sort_values([c for c in ("different labels", "crosses_patients", "correlation") if c in shown],
                              ascending=False, kind="stable")
    note = f"the first {MAX_ROWS} of {len(shown)} pairs; all in the CSV" if len(shown) > MAX_ROWS else ""
    sections = [("counts", _key_values(dedup_counts(pairs))),
                ("pairs (different labels, then across patients, first)",
                 table_html(shown.head(MAX_ROWS), "no near-duplicate pairs") + (f'<p class="note">{note}</p>' if note else ""))]
    return html_page(_title(title, "near-duplicate pairs"), sections,
                     "Frames of two different items that are near copies of each other. Pairs across patients break a "
                     "patient-level split unless dedup.policy is group or drop; pairs with different labels are a label "
                     "conflict to check.")


def _count(value: float) -> int | float:
    """A median of counts: an integer when it is one (a float would print as '1.000')."""
    return int(value) if float(value).is_integer() else float(value)


def page_frames(inputs: Mapping, title: str) -> str:
    """What was ingested, per class: patients, items, frames and items with a lesion mask."""
    frames = _read(inputs["frames"])
    mask = frames["has_mask"].astype(str).str.lower().eq("true")
    rows = []
    for label, part in list(frames.groupby("label", sort=True)) + [("all classes", frames)]:
        rows.append({"label": label, "patients": part["patient_id"].nunique(), "items": part["item_id"].nunique(),
                     "frames": len(part), "items with a mask": part.loc[mask.loc[part.index], "item_id"].nunique(),
                     "frames per item (median)": _count(part.groupby("item_id").size().median())})
    return html_page(_title(title, "ingested frames"),
                     [("", table_html(pd.DataFrame(rows)))], "Per class; one row per frame in the CSV beside this page.")


PAGES: dict[str, Callable[[Mapping, str], str]] = {
    "headline": page_headline,
    "folds": page_folds,
    "leakage": page_leakage,
    "split_report": page_split,
    "pairs": page_dedup,
    "frames": page_frames,
    "cam_quality": page_table("cam_quality", "Grad-CAM quality",
                              "Per CAM method, class and scope: share of CAM energy inside the lesion and pointing-game "
                              "hit rate, each against chance (the lesion's area share).", first=("scope",)),
    "segment_summary": page_table("segment_summary", "U-Net segmentation (Dice, IoU, HD95)",
                                  "Mean ± sd per class, on patients the U-Net never trained on."),
    "models": page_table("models", "every run side by side",
                         "AUC, accuracy, sensitivity, specificity, precision and F1 with 95% CIs; delong_p_vs_best: "
                         "paired DeLong test against the run with the highest AUC (binary question)."),
    "compare": page_table("compare", "pairwise comparisons",
                          "Every two runs on the same patients: paired DeLong test of the AUCs, "
                          "exact McNemar test of the calls."),
    "readers": page_table("readers", "readers' metrics"),
    "readers_vs_model": page_table("readers_vs_model", "readers against the model"),
}


def write_pages(outputs: Mapping[str, str | os.PathLike], inputs: Mapping[str, str | os.PathLike], title: str = "") -> None:
    """Render the page of every ``outputs`` name (a key of PAGES) from the ``inputs`` it reads,
    each written atomically."""
    from sonoflow.io import save_text

    unknown = sorted(set(outputs) - set(PAGES))
    if unknown:
        raise ValueError(f"no table page called {unknown}; known: {', '.join(PAGES)}")
    for name, path in outputs.items():
        save_text(path, PAGES[name](inputs, title))


# --- The landing page -------------------------------------------------------------------------------


def run_headline(headline: pd.DataFrame, run: str) -> pd.DataFrame:
    """One row per level of a run's headline part (test when there is one, else cv): n and the
    overall metrics with 95% CIs (sonoflow.evaluate.model_table's layout)."""
    from sonoflow.evaluate import model_table

    part = "test" if (headline["part"] == "test").any() else "cv"
    table = model_table({run: headline.fillna({"class": ""})}, pd.DataFrame(columns=["target", "level"]), part)
    return table.drop(columns=[c for c in ("best_auc", "delong_p_vs_best") if c in table])


def log_warnings(folder: str | os.PathLike, skip: Sequence[str | os.PathLike] = ()) -> list[tuple[str, str]]:
    """(log file, message) of every WARNING line that the run's jobs logged (sonoflow.logs'
    format), in file order."""
    folder, skipped = Path(folder), {Path(p).resolve() for p in skip}
    found = []
    for path in sorted(folder.rglob("*.log")) if folder.is_dir() else []:
        if path.resolve() in skipped:
            continue
        for line in path.read_text(errors="replace").splitlines():
            _, marker, message = line.partition(" WARNING ")
            if marker:
                found.append((str(path.relative_to(folder)), message.split(": ", 1)[-1].strip()))
    return found


def landing_page(runs: Mapping[str, tuple[pd.DataFrame, Mapping | None]], source: str, demo: bool,
                 warnings: Sequence[str] = (), logged: Sequence[tuple[str, str]] = (),
                 pairs: pd.DataFrame | None = None, crossing: pd.DataFrame | None = None, dedup_policy: str = "",
                 audit: pd.DataFrame | None = None, plan: Mapping | None = None) -> str:
    """The report's first page: what ran on what, the headline of every run (patient level first:
    it is the unit of the claim), the warnings, near-duplicate counts, and the audit and plan when
    the run has them (``audit``: a table; ``plan``: planned setting -> value)."""
    sections = []
    intro = f"Data: <code>{html.escape(source)}</code>."
    if demo:
        intro = ('<div class="banner">This is the built-in synthetic demo (no <code>samples</code> or '
                 "<code>data</code> given): the figures below are not about real patients.</div>")
    rows, points = [], []
    for run, (headline, thresholds) in runs.items():
        table = run_headline(headline, run)
        rows.append(table.assign(level=pd.Categorical(table["level"], ["patient", "image"])))
        points.append(f"<li><b>{html.escape(run)}</b>: {html.escape(operating_point(thresholds))}</li>")
    if rows:
        table = pd.concat(rows, ignore_index=True).sort_values(["level", "run"], kind="stable")
        table["level"] = table["level"].astype(str)
        # One column per run and level, a row per metric: narrow enough for the report's first page.
        shown = readable(table.drop(columns=["run", "part", "level", "patients", "cases"]))
        shown.index = [f"{run} · {part} · {level} level ({n} patients"
                       + (f", {cases} frames)" if level == "image" else ")")
                       for run, part, level, n, cases
                       in table[["run", "part", "level", "patients", "cases"]].itertuples(index=False)]
        wide = shown.T.rename_axis("metric").reset_index()
        wide["metric"] = wide["metric"].str.replace(" [95% CI]", "", regex=False)
        body = '<p class="note">estimate [95% CI]</p>' + wide.to_html(index=False, escape=True, border=0,
                                                                         classes="sonoflow-table")
        if wide.apply(lambda column: column.astype(str).str.contains(" ‡", regex=False)).to_numpy().any():
            body += f'<p class="note flag">‡ lower and upper bound coincide: {DEGENERATE}.</p>'
        body += ('<p class="note">part test: held-out test patients, fold ensemble; cv: pooled out-of-fold '
                 "predictions of the validation folds (no test set). Patient level: frame probabilities averaged "
                 "per patient, the unit of the claim. Per-class figures: each run's headline page.</p>")
        body += f"<p>Operating point:</p><ul>{''.join(points)}</ul>"
        sections.append(("headline of every run", body))
    items = [f"<li>{html.escape(w)}</li>" for w in warnings]
    items += [f"<li>{html.escape(message)} <span class=\"note\">({html.escape(log)})</span></li>" for log, message in logged]
    sections.append(("warnings of the run", f'<ul class="warnings">{"".join(items)}</ul>' if items
                     else '<p class="note">none</p>'))
    if pairs is not None:
        counts = {**dedup_counts(pairs), "policy": dedup_policy or MISSING}
        if crossing is not None and len(crossing) and "crossing" in crossing:
            counts["pairs still across the split (max over folds)"] = int(pd.to_numeric(crossing["crossing"]).max())
        sections.append(("near-duplicates", _key_values(counts)))
    else:
        sections.append(("near-duplicates", '<p class="note">not checked (dedup.enabled: false)</p>'))
    # Hooks for the audit and plan stages: rendered when the run has them.
    if audit is not None:
        sections.append(("audit", table_html(audit, "no findings")))
    if plan is not None:
        sections.append(("plan", _key_values({key: format_number(value) for key, value in plan.items()})))
    return html_page("sonoflow run", sections, intro)


def _plan_values(plan: Sequence[Mapping]) -> dict:
    """setting -> value as people read it: a planned value says so, and what the time budget cut."""
    def shown(entry):
        value = f"{entry['value']} (planned)" if entry["planned"] else entry["value"]
        # The data plan's records say how long training takes and what the time budget cut.
        return f"{value}: {entry['why']}" if entry.get("estimated_hours") is not None else value
    return {entry["key"]: shown(entry) for entry in plan}


def write_landing(path: str | os.PathLike, run_names: Sequence[str], headlines: Sequence[str | os.PathLike],
                  thresholds: Sequence[str | os.PathLike], source: str, demo: bool, warnings: Sequence[str] = (),
                  log_folder: str | os.PathLike | None = None, skip_logs: Sequence[str | os.PathLike] = (),
                  pairs: str | os.PathLike | None = None,
                  crossing: str | os.PathLike | None = None, dedup_policy: str = "",
                  audit: str | os.PathLike | None = None, plan: Sequence[Mapping] | None = None) -> None:
    """Read a run's files and write its landing page (see landing_page) atomically; ``plan``: the
    run's plan records (sonoflow.plan.apply_plan), shown as setting -> value."""
    from sonoflow.evaluate import read_decision
    from sonoflow.io import save_text

    runs = {name: (_read(headline).fillna({"class": ""}), read_decision(threshold))
            for name, headline, threshold in zip(run_names, headlines, thresholds)}
    logged = log_warnings(log_folder, skip=skip_logs) if log_folder else []
    page = landing_page(runs, source, demo, warnings, logged,
                        pairs=_read(pairs) if pairs else None, crossing=_read(crossing) if crossing else None,
                        dedup_policy=dedup_policy, audit=_read(audit) if audit else None,
                        plan=_plan_values(plan) if plan else None)
    save_text(path, page)


# --- The audit's page -----------------------------------------------------------------------------


def audit_page(summary: pd.DataFrame, title: str = "Data audit") -> str:
    """The audit's summary (sonoflow.audit.audit_summary) as a small standalone HTML page, one
    table per section."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.warn{color:#b00}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for section, table in summary.groupby("section", sort=False):
        parts.append(f"<h2>{html.escape(section)}</h2><table><tr><th>finding</th><th>value</th><th>note</th></tr>")
        for row in table.itertuples():
            warn = " class='warn'" if "can be guessed" in str(row.note) or (
                "label conflicts" in row.finding and str(row.value) not in ("0", "")) else ""
            parts.append(f"<tr{warn}><td>{html.escape(row.finding)}</td><td>{html.escape(str(row.value))}</td>"
                         f"<td>{html.escape(str(row.note))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- Predictions on new cases -----------------------------------------------------------------------


def _prediction_table_html(table: pd.DataFrame) -> str:
    shown = table.copy()
    if "label" in shown and not shown["label"].astype(str).str.len().any():
        shown = shown.drop(columns="label")  # new cases without labels
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda value: f"{value:.3f}")
    return shown.to_html(index=False, border=0, classes="table", escape=True)


def _image_html(path: str | os.PathLike) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).name)}" style="max-width:100%" src="data:image/png;base64,{data}">'


def prediction_page(batch: str, sheet: str, runs: Mapping[str, Mapping[str, str | os.PathLike]], labels: Sequence[str],
                positive: Sequence[str], notes: Sequence[str] = ()) -> str:
    """sonoflow.predict's self-contained page: per run, the patients' and items' probabilities and calls, and the
    CAM overlays. ``runs``: name -> {"patients", "items", "overlays"} paths and optionally the run's
    ``decision`` (sonoflow.evaluate.read_decision: its temperature and pooling)."""
    question = (f"binary: {', '.join(positive)} vs the rest; the call uses the Youden threshold chosen on the "
                "validation patients (items: image level, patients: patient level)") if positive else \
        f"multi-class: the most probable of {', '.join(labels)}"
    parts = [f"<h1>sonoflow predictions: {html.escape(batch)}</h1>",
             f"<p>Sample sheet <code>{html.escape(sheet)}</code>. Question: {html.escape(question)}. "
             "Probabilities are calibrated: each trained fold's softmax output rescaled by the run's temperature "
             "(temperature scaling, fitted on the run's validation folds, never on its test patients; T=1 where "
             "calibration is off), averaged over the folds (the fold ensemble), then pooled over an item's or a "
             "patient's frames as the run's evaluation pooled them.</p>",
             "<p><b>Research use only.</b> The model was validated only on held-out patients of the data set it "
             "was trained on (see the run's evaluation); these outputs are not a diagnosis.</p>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    for name, paths in runs.items():
        patients = pd.read_csv(paths["patients"], dtype={"patient_id": str, "label": str}, keep_default_na=False)
        items = pd.read_csv(paths["items"], dtype={"patient_id": str, "item_id": str, "label": str}, keep_default_na=False)
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if "decision" in paths:
            parts.append(f"<p>Calibration: {html.escape(paths['decision']['calibration'])}, temperature "
                         f"{paths['decision']['temperature']:.3f}; pooling over frames: "
                         f"{html.escape(paths['decision']['pooling'])}.</p>")
            if paths["decision"]["unit"] == "item":
                parts.append("<p>This run was validated per item (its patients carry items of several labels): the "
                             "items' calls are the validated ones; a patient's row pools all its items, and a binary "
                             "call there uses 0.5, not a threshold chosen on validation.</p>")
        seen = int((patients.get("seen_in_training", pd.Series(dtype=str)).astype(str) == "True").sum())
        if seen:
            parts.append(f"<p><b>{seen} of {len(patients)} patients were training or validation patients of this run"
                         "</b> (seen_in_training): their probabilities are optimistic.</p>")
        parts += [f"<h3>Patients ({len(patients)})</h3>", _prediction_table_html(patients),
                  f"<h3>Items ({len(items)})</h3>", _prediction_table_html(items)]
        if paths.get("overlays") and Path(paths["overlays"]).stat().st_size:
            parts += ["<h3>Grad-CAM of the predicted class</h3>", _image_html(paths["overlays"])]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 6px;border-bottom:1px solid #ddd}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>sonoflow predictions {html.escape(batch)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
