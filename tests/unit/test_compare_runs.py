"""benchmarks/compare_runs.py: finished runs of one split, paired against the first; other splits refused."""

import json

import pytest

from conftest import load_benchmark
from sonoflow.evaluate import EvaluateSettings, decision_record, evaluate_run, for_people, write_decision
from sonoflow.io import save_csv
from test_evaluate import LABELS, fold_tables

SETTINGS = {"positive": ["malignant"], "n_boot": 100}


def fake_run(folder, skill: float, seconds: float, test_patients=("T1",)):
    """A finished run's files: split, manifest, its evaluation of known predictions, one benchmark."""
    val, _ = fold_tables(skill=skill)
    evaluation = evaluate_run(val, [v.iloc[:0] for v in val], LABELS, EvaluateSettings.from_config(SETTINGS))
    out = folder / "results/evaluate/efficientnet_lite0/full"
    out.mkdir(parents=True)
    save_csv(out / "headline.csv", for_people(evaluation.headline))
    save_csv(out / "predictions_cv.csv", evaluation.parts["cv"])
    write_decision(out / "thresholds.json", decision_record(evaluation, EvaluateSettings.from_config(SETTINGS), {}))
    (folder / "results/splits.json").write_text(json.dumps({"test": list(test_patients), "folds": [
        {"fold": 0, "train": ["A"], "val": ["B"]}]}))
    (folder / "results/manifest.json").write_text(json.dumps({"config": {"labels": list(LABELS), "evaluate": SETTINGS}}))
    (folder / "results/benchmarks/train").mkdir(parents=True)
    (folder / "results/benchmarks/train/fold_0.tsv").write_text(f"s\th:m:s\tcpu_time\n{seconds}\t0:00:01\t{seconds / 2}\n")
    (folder / "results/benchmarks/split.tsv").write_text("s\th:m:s\tcpu_time\n1.0\t0:00:01\t1.0\n")
    return folder


def test_runs_side_by_side_with_paired_tests_and_their_time(tmp_path):
    compare = load_benchmark("compare_runs")
    runs = {"weak": fake_run(tmp_path / "a", 0.3, 10.0), "strong": fake_run(tmp_path / "b", 2.0, 25.0)}
    table = compare.compare(runs, "efficientnet_lite0", "full").set_index("run")
    assert table.at["strong", "auc"] > table.at["weak", "auc"] and table.at["weak", "part"] == "cv"
    assert 0 <= table.at["strong", "delong_p_positive"] < 0.05
    assert table.at["strong", "train_s"] == 25 and table.at["strong", "train_cpu_s"] == 12  # 12.5, rounded
    assert table.at["strong", "total_s"] == 26 and table.at["strong", "pretrain_s"] == 0
    runs["other split"] = fake_run(tmp_path / "c", 1.0, 5.0, test_patients=("T2",))
    with pytest.raises(SystemExit, match="another split"):
        compare.compare(runs, "efficientnet_lite0", "full")
