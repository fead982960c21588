"""benchmarks/demo_profile.py: one row per job from Snakemake's records, joined to its benchmark file."""

import json
from pathlib import Path

import pytest

from conftest import load_benchmark


def load_profile():
    return load_benchmark("demo_profile")


def record(folder: Path, name: str, rule: str, start: float, end: float, log: str, job_hash: int) -> None:
    (folder / name).write_text(json.dumps({"rule": rule, "starttime": start, "endtime": end, "log": [log],
                                           "job_hash": job_hash, "incomplete": False}))


def bench(workdir: Path, log: str, seconds: float, cpu: float) -> None:
    path = workdir / log.replace("results/logs/", "results/benchmarks/").replace(".log", ".tsv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:01\t100.5\t200\t90\t95\t0\t0\t50\t{cpu}\n")


def test_jobs_are_counted_once_and_joined_to_their_benchmarks(tmp_path):
    profile = load_profile()
    meta = tmp_path / ".snakemake/metadata"
    meta.mkdir(parents=True)
    # Two outputs of one ingest job (start times microseconds apart), a second ingest job, one train job.
    record(meta, "a", "ingest", 100.0, 110.0, "results/logs/ingest/shard_0.log", 1)
    record(meta, "b", "ingest", 100.0001, 110.0, "results/logs/ingest/shard_0.log", 1)
    record(meta, "c", "ingest", 101.0, 111.0, "results/logs/ingest/shard_1.log", 2)
    record(meta, "d", "train", 111.0, 141.0, "results/logs/train/m/roi/fold_0.log", 3)
    bench(tmp_path, "results/logs/ingest/shard_0.log", 10, 4)
    bench(tmp_path, "results/logs/ingest/shard_1.log", 10, 5)
    bench(tmp_path, "results/logs/train/m/roi/fold_0.log", 30, 50)
    per_rule, totals = profile.profile(profile.job_table(tmp_path))
    assert per_rule.loc["ingest", "jobs"] == 2 and per_rule.loc["train", "jobs"] == 1
    assert per_rule.loc["ingest", "wall_s"] == pytest.approx(20.0, abs=1e-3)
    assert per_rule.loc["ingest", "cpu_s"] == 9 and per_rule.loc["train", "cpu_s"] == 50
    assert per_rule.loc["train", "share"] == pytest.approx(30 / 50, abs=1e-4)
    assert list(per_rule.index) == ["train", "ingest"]  # dearest first
    assert totals["wall_s"] == pytest.approx(41.0) and totals["jobs"] == 3


def test_a_workdir_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no Snakemake metadata"):
        load_profile().job_table(tmp_path)


def test_a_baseline_run_is_compared_rule_by_rule_and_as_a_whole(tmp_path):
    profile = load_profile()
    runs = {}
    for name, train_s in (("run", 30.0), ("base", 60.0)):
        workdir = tmp_path / name
        meta = workdir / ".snakemake/metadata"
        meta.mkdir(parents=True)
        record(meta, "a", "ingest", 100.0, 110.0, "results/logs/ingest/shard_0.log", 1)
        record(meta, "b", "train", 110.0, 110.0 + train_s, "results/logs/train/m/roi/fold_0.log", 2)
        bench(workdir, "results/logs/ingest/shard_0.log", 10, 4)
        bench(workdir, "results/logs/train/m/roi/fold_0.log", train_s, train_s)
        runs[name] = profile.profile(profile.job_table(workdir))
    table = profile.compare(*runs["run"], *runs["base"])
    assert table.loc["train", "wall_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert table.loc["ingest", "wall_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert table.loc["(run)", "wall_ratio"] == pytest.approx(40 / 70, abs=1e-3)
    assert table.loc["(run)", "cpu_ratio"] == pytest.approx(34 / 64)
    assert list(table.index) == ["train", "ingest", "(run)"]
