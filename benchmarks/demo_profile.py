"""Where a workflow run's time went, rule by rule: each rule's share of the wall time and its CPU time.

Reads what Snakemake itself recorded in the working directory: every job's start and end (its
metadata in ``.snakemake/metadata``, which also names the job's rule and log) and the job's
``benchmark:`` file (``results/benchmarks/...tsv``, the log path with ``logs`` -> ``benchmarks``),
which holds its wall seconds ``s`` and ``cpu_time`` (user + system seconds of the job's processes).

    make demo && .venv/bin/python benchmarks/demo_profile.py [--workdir .] [--baseline OTHER_RUN]

With ``--baseline``, a second run of the same DAG (another configuration or commit, run one after
the other on the same machine) is profiled too, and each rule's wall and CPU seconds and the whole
run's wall time are printed as a ratio against it (below 1: this run is faster).

The run's wall time is from the first job's start to the last job's end (Snakemake's own start-up
before the first job, a few seconds, is not included). Jobs run side by side on ``--cores``, so the
rules' shares are of the summed job time; ``busy`` is the summed job time over the wall time.
CPU seconds do not depend on what else runs on the machine; wall seconds do, so the load average
is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd


def benchmark_path(workdir: Path, log: str) -> Path:
    """The benchmark file the rules write next to a job's log (same path under results/benchmarks)."""
    relative = Path(log)
    parts = list(relative.parts)
    if "logs" in parts:
        parts[parts.index("logs")] = "benchmarks"
    return workdir.joinpath(*parts).with_suffix(".tsv")


def job_table(workdir: Path) -> pd.DataFrame:
    """One row per job recorded in the metadata: rule, start, end, and its benchmark figures."""
    folder = workdir / ".snakemake" / "metadata"
    if not folder.is_dir():
        raise SystemExit(f"no Snakemake metadata in {folder}: run the workflow there first")
    jobs: dict[tuple, dict] = {}
    for path in folder.iterdir():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("incomplete") or record.get("starttime") is None or record.get("endtime") is None:
            continue
        logs = record.get("log") or []
        # One record per output file; the outputs of one job share its rule, log and job hash
        # (their start times differ by microseconds): one row per job, from its first start to its last end.
        key = (record["rule"], tuple(logs), record.get("job_hash"))
        job = jobs.setdefault(key, {"rule": record["rule"], "start": record["starttime"], "end": record["endtime"],
                                    "log": logs[0] if logs else ""})
        job["start"], job["end"] = min(job["start"], record["starttime"]), max(job["end"], record["endtime"])
    if not jobs:
        raise SystemExit(f"no finished jobs recorded in {folder}")
    table = pd.DataFrame(jobs.values())
    table["job_s"] = table["end"] - table["start"]
    cpu, bench_s, rss = [], [], []
    for log in table["log"]:
        bench = benchmark_path(workdir, log) if log else None
        if bench is not None and bench.is_file():
            row = pd.read_csv(bench, sep="\t").iloc[-1]
            cpu.append(float(row["cpu_time"]))
            bench_s.append(float(row["s"]))
            rss.append(float(row["max_rss"]) if str(row["max_rss"]) != "-" else float("nan"))
        else:
            cpu.append(float("nan"))
            bench_s.append(float("nan"))
            rss.append(float("nan"))
    table["cpu_s"], table["bench_s"], table["max_rss_mb"] = cpu, bench_s, rss
    return table


def profile(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per rule: jobs, summed job seconds, share of all job seconds, CPU seconds, peak memory."""
    per_rule = table.groupby("rule").agg(jobs=("rule", "size"), wall_s=("job_s", "sum"), cpu_s=("cpu_s", "sum"),
                                         max_rss_mb=("max_rss_mb", "max"))
    per_rule["share"] = per_rule["wall_s"] / per_rule["wall_s"].sum()
    per_rule["cpu_per_wall"] = per_rule["cpu_s"] / per_rule["wall_s"].where(per_rule["wall_s"] > 0)
    per_rule = per_rule.sort_values("wall_s", ascending=False)
    span = float(table["end"].max() - table["start"].min())
    totals = {"jobs": len(table), "wall_s": span, "job_s": float(table["job_s"].sum()),
              "cpu_s": float(table["cpu_s"].sum()), "busy": float(table["job_s"].sum()) / max(span, 1e-9)}
    return per_rule, totals


def compare(per_rule: pd.DataFrame, totals: dict, base_rule: pd.DataFrame, base_totals: dict) -> pd.DataFrame:
    """Per rule of either run: wall and CPU seconds of both and their ratio (this run / baseline),
    with a last row ``(run)`` for the run's span and summed CPU."""
    base = base_rule[["jobs", "wall_s", "cpu_s"]].add_suffix("_base")
    both = per_rule[["jobs", "wall_s", "cpu_s"]].join(base, how="outer")
    whole = pd.DataFrame({"jobs": [totals["jobs"]], "wall_s": [totals["wall_s"]], "cpu_s": [totals["cpu_s"]],
                          "jobs_base": [base_totals["jobs"]], "wall_s_base": [base_totals["wall_s"]],
                          "cpu_s_base": [base_totals["cpu_s"]]}, index=["(run)"])
    both = pd.concat([both.sort_values("wall_s_base", ascending=False), whole])
    both["wall_ratio"] = both["wall_s"] / both["wall_s_base"].where(both["wall_s_base"] > 0)
    both["cpu_ratio"] = both["cpu_s"] / both["cpu_s_base"].where(both["cpu_s_base"] > 0)
    return both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("."), help="the run's working directory")
    parser.add_argument("--csv", type=Path, help="also write the per-rule table here")
    parser.add_argument("--baseline", type=Path, help="a second run's working directory to compare against")
    args = parser.parse_args()

    per_rule, totals = profile(job_table(args.workdir))
    print(f"{'rule':<18} {'jobs':>4} {'wall s':>8} {'share':>6} {'cpu s':>8} {'cpu/wall':>8} {'max MB':>7}")
    for rule, row in per_rule.iterrows():
        print(f"{rule:<18} {int(row['jobs']):>4} {row['wall_s']:>8.1f} {row['share']:>6.1%} {row['cpu_s']:>8.1f} "
              f"{row['cpu_per_wall']:>8.2f} {row['max_rss_mb']:>7.0f}")
    minutes, seconds = divmod(totals["wall_s"], 60)
    print(f"run wall time {totals['wall_s']:.1f} s ({int(minutes)} min {seconds:.0f} s) from first job start to last "
          f"job end; {totals['jobs']} jobs; summed job time {totals['job_s']:.1f} s (busy {totals['busy']:.2f} "
          f"job slots); CPU {totals['cpu_s']:.1f} s")
    load = os.getloadavg()
    print(f"load average now (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    if args.baseline:
        base_rule, base_totals = profile(job_table(args.baseline))
        table = compare(per_rule, totals, base_rule, base_totals)
        print(f"\nagainst the baseline run {args.baseline} (ratio = this run / baseline; below 1 is faster)")
        print(f"{'rule':<18} {'wall s':>8} {'base s':>8} {'ratio':>6} {'cpu s':>8} {'base':>8} {'ratio':>6}")
        for rule, row in table.iterrows():
            print(f"{rule:<18} {row['wall_s']:>8.1f} {row['wall_s_base']:>8.1f} {row['wall_ratio']:>6.3f} "
                  f"{row['cpu_s']:>8.1f} {row['cpu_s_base']:>8.1f} {row['cpu_ratio']:>6.3f}")
    if args.csv:
        per_rule.to_csv(args.csv)


if __name__ == "__main__":
    main()
