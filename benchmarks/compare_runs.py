"""Finished runs of the same sheet and split side by side, paired: each run's headline AUC and
accuracy with their 95% CIs at patient (or item) level, DeLong and McNemar p-values against the
first run on the same cases, and each run's wall and CPU seconds from its rules' benchmark files.

    python benchmarks/compare_runs.py RUN_A RUN_B [RUN_C ...] [--model efficientnet_lite0] [--input full]
        [--names a b c] [--out table.csv]

The part compared is the headline's (the test fold ensemble when the runs have test patients, else
the pooled out-of-fold predictions), read from each run's results/evaluate/MODEL/INPUT/
(predictions_*.csv, headline.csv, thresholds.json). The runs must share results/splits.json's
folds and test patients: a comparison across different splits is refused. Settings (positive
classes, pooling) come from the first run's thresholds.json and config in its manifest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from sonoflow.evaluate import EvaluateSettings, compare_runs, read_decision, read_headline
from sonoflow.io import save_csv
from sonoflow.metrics import read_predictions


def split_of(run: Path) -> dict:
    splits = json.loads((run / "results/splits.json").read_text())
    return {"test": sorted(splits["test"]), "folds": [(f["fold"], sorted(f["train"]), sorted(f["val"]))
                                                     for f in splits["folds"]]}


def seconds(run: Path) -> dict:
    """Wall and CPU seconds from results/benchmarks/**.tsv (snakemake's ``s`` and ``cpu_time``
    columns): pretrain and train apart, and every job's total. On a shared machine the CPU time is
    the steadier figure."""
    totals = {f"{stage}_{kind}": 0.0 for stage in ("pretrain", "train", "total") for kind in ("s", "cpu_s")}
    for path in (run / "results/benchmarks").rglob("*.tsv"):
        table = pd.read_csv(path, sep="\t")
        stage = path.relative_to(run / "results/benchmarks").parts[0]
        for name in ("total", stage) if stage in ("pretrain", "train") else ("total",):
            totals[f"{name}_s"] += float(table["s"].sum())
            cpu = table["cpu_time"] if "cpu_time" in table.columns else pd.Series(dtype=float)
            totals[f"{name}_cpu_s"] += float(pd.to_numeric(cpu, errors="coerce").fillna(0).sum())
    return totals


def compare(runs: dict[str, Path], model: str, mode: str) -> pd.DataFrame:
    first = next(iter(runs.values()))
    reference = split_of(first)
    for name, run in runs.items():
        if split_of(run) != reference:
            raise SystemExit(f"{name} ({run}) has another split than {first}: its results/splits.json differs")
    folder = f"results/evaluate/{model}/{mode}"
    decision = read_decision(first / folder / "thresholds.json")
    manifest = json.loads((first / "results/manifest.json").read_text())
    settings = EvaluateSettings.from_config(EvaluateSettings.params(manifest["config"]["evaluate"]))
    headline = read_headline(first / folder / "headline.csv")
    part = "test" if (headline["part"] == "test").any() else "cv"
    unit = decision.get("unit", "patient")
    predictions = {name: read_predictions(run / folder / f"predictions_{part}.csv") for name, run in runs.items()}
    thresholds = {name: read_decision(run / folder / "thresholds.json")["thresholds"].get(unit) for name, run in runs.items()}
    tests = compare_runs(predictions, manifest["config"]["labels"], settings, thresholds, level=unit)
    rows = []
    first_name = next(iter(runs))
    for name, run in runs.items():
        table = read_headline(run / folder / "headline.csv")
        table = table[(table["part"] == part) & (table["level"] == unit)]
        overall = table[table["class"].fillna("").isin(["", "macro"])].drop_duplicates("metric").set_index("metric")
        row = {"run": name, "part": part, "level": unit, "cases": int(overall.at["auc", "cases"])}
        for metric in ("auc", "accuracy"):
            row[metric] = round(float(overall.at[metric, "value"]), 3)
            row[f"{metric}_ci"] = f"{overall.at[metric, 'ci_low']:.3f}-{overall.at[metric, 'ci_high']:.3f}"
        against = tests[(tests["run_a"] == first_name) & (tests["run_b"] == name)]
        if len(against):
            row.update({f"delong_p_{t}": round(float(p), 3) for t, p in zip(against["target"], against["delong_p"])})
            row["mcnemar_p"] = round(float(against["mcnemar_p"].iloc[0]), 3)
        row.update({name: round(value) for name, value in seconds(run).items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    timing = [c for c in table.columns if c.endswith("_s")]
    return table[[c for c in table.columns if c not in timing] + timing]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--input", default="full")
    parser.add_argument("--names", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = args.names or [run.name for run in args.runs]
    if len(names) != len(args.runs):
        raise SystemExit("give one name per run")
    table = compare(dict(zip(names, args.runs)), args.model, args.input)
    if args.out:
        save_csv(args.out, table)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
