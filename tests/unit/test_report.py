"""The report's HTML pages of tables and its landing page (sonoflow.report)."""

import re

import numpy as np
import pandas as pd
import pytest

from sonoflow.evaluate import evaluate_run, write_decision
from sonoflow.io import save_csv
from sonoflow.report import (DEGENERATE, PAGES, dedup_counts, format_estimate, format_number, landing_page,
                             log_warnings, operating_point, readable, write_landing, write_pages)
from test_evaluate import LABELS, SETTINGS, fold_tables

LONG_DECIMALS = re.compile(r"\d\.\d{4,}")


def test_numbers_are_rounded_for_people():
    assert format_number(0.9999999999999999) == "1.000"
    assert format_number(0.12345) == "0.123" and format_number(-0.00001) == "0.000"
    assert format_number(np.int64(42)) == "42" and format_number(3.0) == "3.000"
    assert format_number(np.nan) == format_number(None) == "—"
    assert format_number(True) == "yes" and format_number(np.bool_(False)) == "no"
    assert format_number(0.00002, p_value=True) == "<0.001" and format_number(0.0412, p_value=True) == "0.041"
    assert format_number("cyst") == "cyst"


def test_estimates_carry_their_interval_and_a_degenerate_one_is_flagged():
    assert format_estimate(0.91234, 0.85, 0.96) == "0.912 [0.850, 0.960]"
    assert format_estimate(0.9, np.nan, np.nan) == "0.900"
    assert format_estimate(1.0, 1.0, 1.0).endswith("‡")
    assert format_estimate(1.0, 0.9999999999, 1.0) == "1.000 [1.000, 1.000] ‡"  # coinciding as people read them
    assert format_estimate(np.nan, 0.1, 0.2) == "—"


def test_readable_merges_intervals_and_mean_sd_and_rounds_everything():
    table = pd.DataFrame({"run": ["a", "b"], "auc": [0.93333333, 0.5], "auc_ci_low": [0.8, np.nan],
                          "auc_ci_high": [0.99, np.nan], "dice_mean": [0.81234, 0.7], "dice_sd": [0.1, np.nan],
                          "delong_p": [1e-6, 0.31234], "patients": [7, 8]})
    shown = readable(table)
    assert list(shown.columns) == ["run", "auc [95% CI]", "dice mean ± sd", "delong_p", "patients"]
    assert shown["auc [95% CI]"].tolist() == ["0.933 [0.800, 0.990]", "0.500"]
    assert shown["dice mean ± sd"].tolist() == ["0.812 ± 0.100", "0.700"]
    assert shown["delong_p"].tolist() == ["<0.001", "0.312"] and shown["patients"].tolist() == ["7", "8"]
    gaps = readable(pd.DataFrame({"fold": ["0", "mean"], "patients": [5.0, np.nan], "auc": [1.0, 1.0]}))
    assert gaps["patients"].tolist() == ["5", "—"] and gaps["auc"].tolist() == ["1.000", "1.000"]


def test_operating_point_of_a_binary_question_and_of_a_multi_class_call():
    binary = operating_point({"positive": ["malignant"], "thresholds": {"image": 0.41234, "patient": 0.5}})
    assert "P(malignant) ≥ 0.412" in binary and "patient level: P(malignant) ≥ 0.500" in binary
    assert "argmax" in operating_point({"positive": [], "thresholds": {"image": None, "patient": None}})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A binary run's real evaluate outputs (headline, folds, thresholds) on disk."""
    folder = tmp_path_factory.mktemp("run")
    val, test = fold_tables(skill=0.6)
    result = evaluate_run(val, test, LABELS, SETTINGS)
    save_csv(folder / "headline.csv", result.headline)
    save_csv(folder / "folds.csv", result.folds)
    save_csv(folder / "leakage.csv", pd.DataFrame({"fold": [0, 1], "pairs": [3, 3], "crossing": [1, 0]}))
    write_decision(folder / "thresholds.json", {"thresholds": result.thresholds, "positive": ["malignant"]})
    return folder, result


def test_headline_page_shows_every_estimate_with_ci_n_and_the_operating_point(evaluated, tmp_path):
    folder, result = evaluated
    inputs = {name: folder / f"{name}.{'json' if name == 'thresholds' else 'csv'}"
              for name in ("headline", "thresholds", "folds", "leakage")}
    outputs = {name: tmp_path / f"{name}.html" for name in ("headline", "folds", "leakage")}
    write_pages(outputs, inputs, "net, roi input")
    page = outputs["headline"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert not LONG_DECIMALS.search(page), LONG_DECIMALS.findall(page)[:5]
    row = result.headline.set_index(["part", "level", "metric", "class"]).loc[("test", "patient", "auc", "")]
    assert format_estimate(row["value"], row["ci_low"], row["ci_high"]) in page
    assert "patient level (20 patients)" in page and "image level (20 patients, 60 frames)" in page
    assert f"P(malignant) ≥ {format_number(result.thresholds['patient'])}" in page
    # One interval method for the whole table (evaluate's patient bootstrap): named once, no cell marked.
    assert "unmarked: patient bootstrap" in page and "†" not in page
    folds = outputs["folds"].read_text()
    assert "image level" in folds and "mean" in folds and not LONG_DECIMALS.search(folds)
    assert "crossing" in outputs["leakage"].read_text()


def test_a_degenerate_interval_is_explained_on_the_page(tmp_path):
    headline = pd.DataFrame([{"part": "test", "level": "patient", "patients": 7, "cases": 7, "metric": "accuracy",
                              "class": "", "value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "ci_method": "patient bootstrap"}])
    save_csv(tmp_path / "headline.csv", headline)
    write_pages({"headline": tmp_path / "h.html"}, {"headline": tmp_path / "headline.csv"}, "run")
    page = (tmp_path / "h.html").read_text()
    assert "1.000 [1.000, 1.000] ‡" in page and DEGENERATE in page


def test_every_page_renders_from_its_csv_and_unknown_pages_are_refused(tmp_path):
    tables = {
        "cam_quality": pd.DataFrame({"method": ["gradcam"], "label": ["cyst"], "energy_inside": [0.51234],
                                     "chance": [0.2], "scope": ["fold 0"]}),
        "segment_summary": pd.DataFrame({"label": ["cyst"], "frames": [4], "dice_mean": [0.8123], "dice_sd": [0.05]}),
        "models": pd.DataFrame({"run": ["a"], "auc": [0.9], "auc_ci_low": [0.8], "auc_ci_high": [0.95]}),
        "compare": pd.DataFrame({"run_a": ["a"], "run_b": ["b"], "delong_p": [0.0001], "mcnemar_p": [0.5]}),
        "split_report": pd.DataFrame({"part": ["test", "train", "val"], "fold": ["", "0", "0"], "label": ["cyst"] * 3,
                                      "patients": [1, 2, 3], "items": [2, 4, 6], "frames": [9, 18, 27]}),
        "frames": pd.DataFrame({"patient_id": ["p1", "p1", "p2"], "item_id": ["a", "a", "b"], "label": ["cyst"] * 3,
                                "has_mask": [True, True, False]}),
        "frames_whole": pd.DataFrame({"patient_id": ["p1", "p2"], "item_id": ["a", "b"], "label": ["cyst"] * 2,
                                      "has_mask": [True, False]}),
    }
    for name, table in tables.items():
        save_csv(tmp_path / f"{name}.csv", table)
    outputs = {name: tmp_path / f"{name}.html" for name in tables if name in PAGES}
    write_pages(outputs, {name: tmp_path / f"{name}.csv" for name in tables})
    write_pages({"frames": tmp_path / "whole.html"}, {"frames": tmp_path / "frames_whole.csv"})
    assert re.search(r"<td>1</td>\s*</tr>", (tmp_path / "whole.html").read_text())  # a median of 1 frame, not 1.000
    assert "0.512" in outputs["cam_quality"].read_text()
    assert re.search(r"<th>scope</th>\s*<th>method</th>", outputs["cam_quality"].read_text())  # which scope, first
    assert "0.812 ± 0.050" in outputs["segment_summary"].read_text()
    assert "0.900 [0.800, 0.950]" in outputs["models"].read_text()
    assert "&lt;0.001" in outputs["compare"].read_text()
    split = outputs["split_report"].read_text()
    assert "fold 0 train" in split and "2 / 4 / 18" in split
    assert re.search(r"<td>cyst</td>\s*<td>2</td>\s*<td>2</td>\s*<td>3</td>\s*<td>1</td>\s*<td>1.500</td>",
                     outputs["frames"].read_text())
    with pytest.raises(ValueError, match="no table page called"):
        write_pages({"nonsense": tmp_path / "x.html"}, {})
    assert {"headline", "folds", "leakage", "pairs", "readers", "readers_vs_model"} <= set(PAGES)


def pairs_table():
    return pd.DataFrame({"item_a": ["a1", "b1", "c1"], "patient_a": ["A", "B", "C"], "label_a": ["cyst", "cyst", "normal"],
                         "shard_a": ["00"] * 3, "row_a": [0, 1, 2], "item_b": ["a2", "x1", "y1"],
                         "patient_b": ["A", "X", "Y"], "label_b": ["cyst", "normal", "normal"], "shard_b": ["01"] * 3,
                         "row_b": [0, 1, 2], "correlation": [0.99, 0.7, 0.8], "crosses_patients": [False, True, True]})


def test_near_duplicate_page_counts_and_puts_label_conflicts_first(tmp_path):
    assert dedup_counts(pairs_table()) == {"pairs": 3, "items": 6, "pairs across patients": 2,
                                           "pairs with different labels": 1}
    save_csv(tmp_path / "pairs.csv", pairs_table())
    write_pages({"pairs": tmp_path / "pairs.html"}, {"pairs": tmp_path / "pairs.csv"})
    page = (tmp_path / "pairs.html").read_text()
    assert "shard_a" not in page and "row_b" not in page
    rows = re.findall(r"<tr>\s*<td>(yes|no)</td>\s*<td>(\w+)</td>", page)
    assert rows[0] == ("yes", "b1"), rows  # the pair with different labels first


def test_log_warnings_reads_every_jobs_warning_lines(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train/fold_0.log").write_text(
        "2026-01-01 10:00:00,000 INFO sonoflow.train: epoch 1\n"
        "2026-01-01 10:00:01,000 WARNING sonoflow.train: fold 0 stopped early at epoch 6; kept epoch 2\n")
    (tmp_path / "own.log").write_text("2026-01-01 10:00:00,000 WARNING sonoflow: not me\n")
    assert log_warnings(tmp_path, skip=[tmp_path / "own.log"]) == [
        ("train/fold_0.log", "fold 0 stopped early at epoch 6; kept epoch 2")]
    assert log_warnings(tmp_path / "missing") == []


def test_landing_page_holds_every_runs_headline_warnings_duplicates_and_hooks(evaluated, tmp_path):
    folder, result = evaluated
    thresholds = {"thresholds": result.thresholds, "positive": ["malignant"]}
    runs = {"net/full": (result.headline, thresholds), "net/roi": (result.headline, thresholds)}
    page = landing_page(runs, "results/demo/samples.csv", demo=True, warnings=["preset x: 5 classes"],
                        logged=[("dedup/dedup.log", "3 pairs <across> patients")], pairs=pairs_table(),
                        crossing=pd.DataFrame({"fold": [0, 1], "crossing": [2, 1]}), dedup_policy="report",
                        audit=pd.DataFrame({"finding": ["calipers"], "items": [4]}), plan={"epochs": 12})
    assert "built-in synthetic demo" in page
    assert page.count("net/full") >= 2 and "net/roi" in page  # headline row per level, and operating point
    row = result.headline.set_index(["part", "level", "metric", "class"]).loc[("test", "patient", "auc", "")]
    assert format_estimate(row["value"], row["ci_low"], row["ci_high"]) in page
    assert "preset x: 5 classes" in page and "3 pairs &lt;across&gt; patients" in page  # escaped
    assert "pairs with different labels" in page and "max over folds" in page
    assert "<h2>audit</h2>" in page and "calipers" in page and "<h2>plan</h2>" in page
    assert not LONG_DECIMALS.search(page)
    plain = landing_page({}, "my.csv", demo=False)
    assert "synthetic" not in plain and "not checked" in plain and "<h2>audit</h2>" not in plain


def test_write_landing_reads_the_runs_files(evaluated, tmp_path):
    folder, _ = evaluated
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "split.log").write_text("2026-01-01 10:00:00,000 WARNING sonoflow: few patients\n")
    save_csv(tmp_path / "pairs.csv", pairs_table())
    write_landing(tmp_path / "landing.html", ["net/roi"], [folder / "headline.csv"], [folder / "thresholds.json"],
                  source="sheet.csv", demo=False, log_folder=logs, pairs=tmp_path / "pairs.csv")
    page = (tmp_path / "landing.html").read_text()
    assert "net/roi" in page and "few patients" in page and "sheet.csv" in page
