"""Every study preset runs end to end on a tiny generated demo, with its protocol intact and only
its length cut down (one epoch, small frames; Grad-CAM only where the study reported heatmaps), and
writes every output it says the study reported."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, SNAKEMAKE, merge
from sonoflow.demo import make_demo
from sonoflow.plan import per_fold_segmenters
from sonoflow.presets import preset_config, preset_paths
from sonoflow.sheet import read_sheet
from sonoflow.split import SplitError, SplitSettings, check_enough_patients, read_splits

pytestmark = pytest.mark.workflow
DEMO_LABELS = ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]
PRESETS = {path.stem: path for path in preset_paths()}
STAGE_ONE = "breast_transfer_mammography"  # runs as the first half of breast_two_stage_transfer
# Protocol keys whose value each trained checkpoint must carry exactly as the preset sets them.
PROTOCOL_KEYS = ("optimizer", "lr", "momentum", "scheduler", "patience", "batch_size", "class_weighting", "augment")


@pytest.fixture(scope="module")
def demo_sheet(tmp_path_factory):
    """One small demo (6 patients per class, a still and a short clip each) shared by every preset."""
    folder = tmp_path_factory.mktemp("preset_demo")
    make_demo(folder, n_patients_per_class=6, images_per_patient=1, clips_per_patient=1, frames_per_clip=4, seed=0)
    return folder / "samples.csv"


def split_seed(sheet: Path, split: dict) -> int:
    """A split seed for which this tiny demo has patients of every class on every side (the
    preset's own scheme is kept; only the draw changes)."""
    rows = read_sheet(sheet)
    for seed in range(200):
        try:
            check_enough_patients(rows, DEMO_LABELS, SplitSettings.from_config({**split, "seed": seed}))
            return seed
        except SplitError:
            continue
    raise AssertionError(f"no seed gives every class a patient on every side of {split}")


def shortened(config: dict, sheet: Path) -> dict:
    """The overrides that make a preset run in seconds: the demo's labels, one epoch, small frames."""
    binary = bool(config["evaluate"]["positive"])
    models = config["train"]["models"]
    return {
        "data": str(sheet),  # the documented `--config data=...` form (shorthand for samples)
        "labels": DEMO_LABELS,
        "evaluate": {"positive": ["hypoechoic_mass"] if binary else [], "n_boot": 100},
        "shards": 1,
        "split": {"seed": split_seed(sheet, config["split"])},
        "ingest": {"size": 64, "max_frames": 3, "previews": 0},
        "segment": {"input_size": 64, "epochs": 1, "steps_per_epoch": 1, "batch_size": 8, "threads": 1},
        # 64 px, a multiple of ViT's 16 px patches and AlexNet's smallest; inception_v3 needs 75 (80 here).
        "train": {"epochs": 1, "input_size": 80 if "inception_v3" in models else 64, "threads": 1},
        # Grad-CAM where the study reported heatmaps; every backbone's CAM wiring is checked in
        # tests/unit/test_models.py, and the other presets' CAM jobs were half of their test time.
        "cam": {"enabled": reports_heatmaps(config), "per_kind": 1, "max_images": 8, "road_images": 0},
    }


def reports_heatmaps(config: dict) -> bool:
    return any(output.startswith("results/cam/") for output in config["preset"]["reported"].values())


def run_preset(name: str, workdir: Path, sheet: Path) -> dict:
    import os
    import subprocess

    config = preset_config(PRESETS[name])
    overrides = shortened(config, sheet)
    workdir.mkdir(parents=True)
    (workdir / "short.yaml").write_text(yaml.safe_dump(overrides))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(PRESETS[name]),
           str(workdir / "short.yaml"), "--cores", "2", "--workflow-profile", str(REPO / "workflow/profiles/default")]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=900)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return merge(config, overrides)


def check_run(name: str, workdir: Path, config: dict) -> None:
    preset, train, split = config["preset"], config["train"], config["split"]
    mode = train["inputs"][0]
    splits = read_splits(workdir / "results/splits.json")
    assert len(splits["folds"]) == split["folds"]
    assert bool(splits["test"]) == (split["test_fraction"] > 0)
    for model in train["models"]:
        for what, output in preset["reported"].items():
            path = workdir / output.replace("MODEL", model)
            if "readers" in output and not config["evaluate"]["readers"]:
                continue  # needs a readers CSV, which a study run brings and the demo does not
            assert path.is_file() and path.stat().st_size > 0, f"{name}: {what} -> {path} missing"
        for fold in range(split["folds"]):
            checkpoint = torch.load(workdir / f"results/train/{model}/{mode}/fold_{fold}/best.pt", map_location="cpu",
                                    weights_only=True)
            for key in PROTOCOL_KEYS:
                assert checkpoint["settings"][key] == train[key], (name, model, key)
            history = pd.read_csv(workdir / f"results/train/{model}/{mode}/fold_{fold}/history.csv")
            assert list(history["epoch"]) == [1]
    if len(train["models"]) > 1:
        table = pd.read_csv(workdir / "results/evaluate/models.csv")
        assert sorted(set(table["run"])) == sorted(f"{model}/{mode}" for model in train["models"])
        # A tiny part can leave an AUC undefined in most resamples: no interval (headline's note says why).
        assert table["auc"].between(0, 1).all()
        assert ((table["auc_ci_low"] <= table["auc"]) | table["auc_ci_low"].isna()).all()
        if config["evaluate"]["positive"]:
            # Each run's p against the best is the pairwise DeLong test of the two (NaN where a
            # tiny validation part has fewer than two patients of a class).
            patient = table[table["level"] == "patient"].set_index("run")
            assert patient["best_auc"].sum() == 1
            best = patient.index[patient["best_auc"]][0]
            pairwise = pd.read_csv(workdir / "results/evaluate/compare.csv")
            for run, row in patient.drop(index=best).iterrows():
                pair = pairwise[[{a, b} == {run, best} for a, b in zip(pairwise["run_a"], pairwise["run_b"])]]
                # As written for people: rounded, "<0.001" below the last digit, in both tables.
                assert str(row["delong_p_vs_best"]) == str(pair["delong_p"].iloc[0])
    if config["segment"]["enabled"]:
        segmenter = "fold_0" if per_fold_segmenters(config["segment"]["per_fold"], config["train"]["inputs"]) else "all"
        assert (workdir / f"results/segment/{segmenter}/summary.csv").is_file()


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {STAGE_ONE}))
def test_preset_runs_end_to_end_on_the_tiny_demo(name, demo_sheet, tmp_path):
    try:
        if name == "breast_two_stage_transfer":
            # Stage 1 in the sibling folder the stage-2 preset reads its checkpoints from.
            stage_one = run_preset(STAGE_ONE, tmp_path / "mammography", demo_sheet)
            check_run(STAGE_ONE, tmp_path / "mammography", stage_one)
        workdir = tmp_path / ("ultrasound" if name == "breast_two_stage_transfer" else name)
        config = run_preset(name, workdir, demo_sheet)
        check_run(name, workdir, config)
        if name == "breast_two_stage_transfer":
            for model in config["train"]["models"]:
                log = (workdir / f"results/logs/train/{model}/full/fold_0.log").read_text()
                assert "initialised from ../mammography/results/train/" in log, log[-2000:]
    finally:
        # Checkpoints of six ImageNet-sized backbones run to gigabytes: keep only the logs.
        for folder in tmp_path.glob("*/results/train"):
            shutil.rmtree(folder, ignore_errors=True)
