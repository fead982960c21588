"""End to end: with pretrain.enabled, each fold's classifier starts from its own contrastive
pretraining on that fold's training patients; no test patient is read by it."""

import json

import pandas as pd
import pytest

from conftest import run_snakemake
from sonoflow.split import read_splits

pytestmark = pytest.mark.workflow

MODEL = "efficientnet_lite0"
CONFIG = {"train": {"inputs": ["full"]}, "segment": {"enabled": False}, "cam": {"enabled": False},
          "dedup": {"enabled": False}, "audit": {"enabled": False},
          "pretrain": {"enabled": True, "epochs": 2, "batch_size": 8, "patience": 2}}


def test_each_fold_starts_from_its_own_pretraining_on_training_patients_only(tmp_path):
    run_snakemake(tmp_path, f"results/evaluate/{MODEL}/full/headline.csv", config=CONFIG)
    splits = read_splits(tmp_path / "results/splits.json")
    for fold in splits["folds"]:
        k = fold["fold"]
        folder = tmp_path / f"results/pretrain/{MODEL}/full/fold_{k}"
        seen = json.loads((folder / "patients.json").read_text())
        assert seen["train"] == sorted(fold["train"]) and seen["val"] == sorted(fold["val"])
        assert not (set(seen["train"]) | set(seen["val"])) & set(splits["test"])
        history = pd.read_csv(folder / "history.csv")
        assert len(history) >= 1 and history["best"].sum() == 1
        train_log = (tmp_path / f"results/logs/train/{MODEL}/full/fold_{k}.log").read_text()
        assert f"initialised from results/pretrain/{MODEL}/full/fold_{k}/encoder.pt" in train_log
    # Pretraining and train.init_from both starting a model is refused before anything runs.
    refused = run_snakemake(tmp_path, "--dry-run", config={**CONFIG, "train": {"inputs": ["full"], "init_from": {
        MODEL: "elsewhere/best.pt"}}}, check=False)
    assert refused.returncode != 0 and "choose one" in refused.stdout + refused.stderr
