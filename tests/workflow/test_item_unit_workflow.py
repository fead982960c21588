"""End to end: a sheet whose patients carry items of several labels (a lesion and normal tissue)
runs through split, training and evaluation grouped by patient and scored per item."""

import json

import pandas as pd
import pytest

from conftest import run_snakemake
from sonoflow.split import read_splits

pytestmark = pytest.mark.workflow

RUN = "results/evaluate/efficientnet_lite0/full"
# Full frames only, no segmentation, CAM or duplicate search: what this test is about is the
# split and the evaluation.
CONFIG = {"train": {"inputs": ["full"]}, "segment": {"enabled": False}, "cam": {"enabled": False},
          "dedup": {"enabled": False}, "evaluate": {"unit": "auto", "pooling": ["mean", "topk", "attention"], "topk": 2}}


def several_label_sheet(demo_sheet: pd.DataFrame) -> pd.DataFrame:
    """Every patient keeps its image and receives the clip of the next patient (of another class),
    so each patient holds two items of two labels."""
    sheet = demo_sheet.copy()
    patients = sorted(sheet["patient_id"].unique())  # the demo numbers its patients class by class in turn
    clips = sheet["path"].str.endswith((".mp4", ".avi", ".gif"))
    following = dict(zip(patients, patients[1:] + patients[:1]))
    sheet.loc[clips, "patient_id"] = sheet.loc[clips, "patient_id"].map({after: before for before, after in following.items()})
    return sheet


def test_several_label_patients_run_end_to_end_grouped_by_patient_scored_per_item(tmp_path):
    run_snakemake(tmp_path, "results/demo/samples.csv")
    demo = pd.read_csv(tmp_path / "results/demo/samples.csv", keep_default_na=False, dtype=str)
    sheet = several_label_sheet(demo)
    labels_per_patient = sheet.groupby("patient_id")["label"].nunique()
    assert (labels_per_patient == 2).all(), labels_per_patient
    sheet.to_csv(tmp_path / "results/demo/several.csv", index=False)
    config = {**CONFIG, "samples": str(tmp_path / "results/demo/several.csv")}
    outputs = [f"{RUN}/{name}" for name in ("headline.csv", "pooling.csv", "calibration.csv", "thresholds.json")]
    run_snakemake(tmp_path, *outputs, config=config)

    splits = read_splits(tmp_path / "results/splits.json")
    test = set(splits["test"])
    for fold in splits["folds"]:  # grouped by patient: no patient on two sides, whatever its items' labels
        assert not (set(fold["train"]) & set(fold["val"])) and not ((set(fold["train"]) | set(fold["val"])) & test)
    headline = pd.read_csv(tmp_path / f"{RUN}/headline.csv", keep_default_na=False)
    assert set(headline["level"]) == {"image", "item"}
    test_items = sheet.loc[sheet["patient_id"].isin(test), "item_id"].nunique()
    item_rows = headline[(headline["part"] == "test") & (headline["level"] == "item")]
    assert (item_rows["cases"] == test_items).all() and (item_rows["patients"] == len(test)).all()
    assert test_items == 2 * len(test)
    log = (tmp_path / "results/logs/evaluate/efficientnet_lite0/full.log").read_text()
    assert "unit item:" in log and "grouped by patient" in log
    decision = json.loads((tmp_path / f"{RUN}/thresholds.json").read_text())
    assert decision["unit"] == "item" and decision["pooling"] == "mean" and decision["temperature"] > 0
    pooling = pd.read_csv(tmp_path / f"{RUN}/pooling.csv")
    assert set(pooling["pooling"]) == {"mean", "topk", "attention"} and set(pooling["level"]) == {"item"}
    p_values = pooling.filter(like="delong_p_vs_mean").stack().dropna()  # NaN: both perfect on a class
    assert len(p_values) and p_values.between(0, 1).all()
    # Attention: one network per fold over each item's frames; its weights sum to 1 per item, and
    # the figure of the frames it leaned on exists.
    folder = tmp_path / "results/train/efficientnet_lite0/full/fold_0"
    weights = pd.read_csv(folder / "attention_val.csv", dtype={"item_id": str})
    assert weights.groupby("item_id")["attention"].sum().round(6).eq(1).all() and (weights["attention"] > 0).all()
    assert (folder / "attention.png").stat().st_size > 0 and len(pd.read_csv(folder / "attention_history.csv")) > 1
    assert "attention over each item's frames" in (
        tmp_path / "results/logs/attend/efficientnet_lite0/full/fold_0.log").read_text()
    calibration = pd.read_csv(tmp_path / f"{RUN}/calibration.csv")
    assert set(calibration["level"]) == {"image", "item"} and calibration["ece_after"].between(0, 1).all()

    # A preset's patient-level study refuses the same sheet before any job, naming the patients.
    refused = run_snakemake(tmp_path, "--dry-run", config={**config, "evaluate": {"unit": "patient"}}, check=False)
    assert refused.returncode != 0 and "has several labels" in refused.stdout + refused.stderr
