"""Every epoch scored: how a training setting behaves over a whole schedule, and how each way of
picking the kept epoch would have scored, from one training per fold.

    python benchmarks/epoch_curves.py RUN_DIR OUT [--positive CLASS] [--epochs 25] [--folds 0 1]
        [--set lr=0.001 ...] [--threads 1] [--unit patient|item] [--scored]

RUN_DIR is a finished (or split and denoised) sonoflow run: its `results/frames.csv`,
`results/splits.json` and denoised frames are read, and each fold's classifier is trained with
sonoflow's own `train_classifier` (the default recipe of config.yaml for real data: 224 px,
EfficientNet-Lite0 from the packaged ImageNet weights, warm-up, label smoothing, EMA, ultrasound
augmentation; ``--set key=value`` changes one setting, values as JSON) for ``--epochs`` epochs with
early stopping off. After every epoch the validation and test frames' probabilities are kept
(`OUT/probs.csv`, the histories `OUT/history_<fold>.csv`). Printed:

- per epoch, the pooled out-of-fold patient AUC (the folds' validation patients together) and the
  test fold ensemble's patient AUC (when the run has test patients);
- for each rule that picks one epoch per fold (the lowest validation loss, the highest validation
  AUC, the last epoch) the same two figures. The first two rules pick on the validation patients
  and so flatter the pooled figure; the test figure is the fair one;
- the epochs the training loop itself would keep under `train.monitor: loss` and `auc` with
  ``--patience`` (replayed on OUT/history_<fold>.csv: the loop's class-weighted validation loss and
  frame AUC, with early stopping). These are what a run keeps; the unweighted "lowest validation
  loss" above is not (on BrEaST it kept epochs 4, 6, 6 where `monitor: loss` keeps 1, 6, 7).

AUC: ``--positive`` vs the rest, or the macro one-vs-rest AUC when not given; per patient, or per
item with ``--unit item`` (as `evaluate.unit: item` scores runs whose patients have items of
several labels, such as lung POCUS).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
import yaml
from sklearn.metrics import log_loss, roc_auc_score

import sonoflow.train as train_module
from sonoflow.config import DEFAULT_CONFIG
from sonoflow.dataset import classifier_store, read_frame_table
from sonoflow.loop import seed_everything
from sonoflow.models import build_model
from sonoflow.plan import AUTO, PLANNED, fingerprint, plan_geometric
from sonoflow.split import partition_for_fold, read_splits, select_frames, usable_frames

def default_recipe() -> dict:
    """config.yaml's classifier as a run on real data trains it: its first model with that model's
    weights, and the plan's real-data values for what is `auto` (224 px; ``geometric`` stays auto
    here: main decides it from the run's data, as rule plan does); epochs and patience are this
    script's own (``--epochs``, early stopping off)."""
    train = yaml.safe_load(DEFAULT_CONFIG.read_text())["train"]
    model = train["models"][0]
    recipe = {**train_module.TrainSettings.params(train, model, "full"), "model": model}
    for (section, key), (_, on_data) in PLANNED.items():
        if section == "train" and recipe.get(key) == AUTO:
            recipe[key] = on_data
    return recipe


def train_fold(frames: pd.DataFrame, splits: dict, fold: int, settings, store) -> tuple[pd.DataFrame, list]:
    """Train one fold; return its history and, per epoch, (validation, test) probabilities."""
    labels = list(splits["labels"])
    partition = partition_for_fold(splits, fold)
    parts = {name: select_frames(frames, partition, name) for name in ("train", "val", "test")}
    index = {name: i for i, name in enumerate(labels)}
    targets = {name: part["label"].map(index).to_numpy() for name, part in parts.items()}
    test = store.gather(parts["test"]) if len(parts["test"]) else None
    kept, predict = [], train_module.predict_proba

    def scored_too(model, batch, input_size, *args, **kwargs):
        """Validation's own call, and the same model on the test frames."""
        val = predict(model, batch, input_size, *args, **kwargs)
        kept.append((val, predict(model, test, input_size, *args, **kwargs) if test is not None else None))
        return val

    seed_everything(settings.seed)
    model = build_model(settings.model, len(labels), in_channels=1, weights=settings.weights,
                        input_size=settings.input_size)
    train_module.predict_proba = scored_too
    try:
        result = train_module.train_classifier(model, store.gather(parts["train"]), targets["train"],
                                               store.gather(parts["val"]), targets["val"], len(labels), settings)
    finally:
        train_module.predict_proba = predict
    tables = []
    for epoch, (val, test_probs) in enumerate(kept, 1):
        for name, probs in (("val", val), ("test", test_probs)):
            if probs is None:
                continue
            table = parts[name][["patient_id", "item_id", "label"]].reset_index(drop=True)
            for i, label in enumerate(labels):
                table[f"p_{label}"] = probs[:, i]
            table["fold"], table["epoch"], table["part"] = fold, epoch, name
            tables.append(table)
    return result.history, tables


UNIT = "patient_id"  # or item_id (--unit item)


def unit_table(table: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """One row per unit (patient, or item with --unit item): its mean frame probabilities and label."""
    return table.groupby(UNIT, sort=True).agg({**{f"p_{label}": "mean" for label in labels}, "label": "first"})


def patient_auc(table: pd.DataFrame, labels: list[str], positive: str | None) -> float:
    """The AUC of the units' mean frame probabilities: ``positive`` vs the rest, else the macro
    one-vs-rest AUC."""
    units = unit_table(table, labels)
    if positive:
        return roc_auc_score(units["label"] == positive, units[f"p_{positive}"])
    ordered = sorted(labels)  # sklearn's multi-class AUC wants the labels, and so the columns, sorted
    return roc_auc_score(units["label"], units[[f"p_{label}" for label in ordered]].to_numpy(),
                         multi_class="ovr", labels=ordered)


def loop_pick(history: pd.DataFrame, monitor: str, patience: int) -> int:
    """The epoch sonoflow.loop.fit keeps for ``train.monitor`` and ``patience``, replayed on a
    history of every epoch: the loop's own ``val_loss`` (class-weighted NLL, as early stopping reads
    it) or ``val_auc`` (ties to the lower loss; the loss where the AUC is missing), stopping once
    ``patience`` epochs bring nothing better."""
    best_epoch, best_score, best_loss = 0, float("inf"), float("inf")
    for row in history.sort_values("epoch").itertuples():
        if best_epoch > 0 and row.epoch - best_epoch > patience:
            break
        auc = getattr(row, "val_auc", float("nan"))
        score = row.val_loss if monitor == "loss" or pd.isna(auc) else -auc
        tie = monitor == "auc" and score == best_score and row.val_loss < best_loss
        if score < best_score or tie:
            best_epoch, best_score, best_loss = int(row.epoch), score, row.val_loss
    return best_epoch


def report(probs: pd.DataFrame, labels: list[str], positive: str | None,
           histories: dict[int, pd.DataFrame] | None = None, patience: int = 5) -> None:
    val, test = probs[probs["part"] == "val"], probs[probs["part"] == "test"]
    folds = sorted(val["fold"].unique())
    print("epoch  pooled out-of-fold patient AUC" + ("  test fold-ensemble patient AUC" if len(test) else ""))
    for epoch in sorted(val["epoch"].unique()):
        line = f"{epoch:5d}  {patient_auc(val[val['epoch'] == epoch], labels, positive):.3f}"
        if len(test):
            line += f"  {patient_auc(test[test['epoch'] == epoch], labels, positive):.3f}"
        print(line)

    def fold_loss(table):
        target = table["label"].map({label: i for i, label in enumerate(labels)})
        probs = table[[f"p_{label}" for label in labels]].to_numpy()
        # as saved (rounded): renormalised, so that sklearn does not warn on every call
        return log_loss(target, probs / probs.sum(1, keepdims=True), labels=range(len(labels)))

    rules = {
        "lowest validation loss": lambda t: min(t["epoch"].unique(), key=lambda e: fold_loss(t[t["epoch"] == e])),
        "highest validation AUC": lambda t: max(t["epoch"].unique(),
                                                key=lambda e: patient_auc(t[t["epoch"] == e], labels, positive)),
        "last epoch": lambda t: t["epoch"].max(),
    }
    # The rules above score the saved probabilities (unweighted frame log loss, patient AUC, no
    # patience); these replay what the training loop itself would keep (its histories' class-weighted
    # val_loss and frame val_auc, with early stopping), which can differ: a fold whose first epoch
    # has the lowest weighted loss keeps it under `monitor: loss` although a later one has the
    # lowest plain log loss.
    if histories:
        for monitor in ("loss", "auc"):
            rules[f"train.monitor {monitor}, patience {patience}"] = (
                lambda t, monitor=monitor: loop_pick(histories[int(t["fold"].iloc[0])], monitor, patience))
    for name, pick in rules.items():
        chosen = {fold: pick(val[val["fold"] == fold]) for fold in folds}

        def picked(table, chosen=chosen):
            return pd.concat([table[(table["fold"] == fold) & (table["epoch"] == epoch)] for fold, epoch in chosen.items()])

        line = f"{name}: epochs {[int(chosen[fold]) for fold in folds]}, pooled {patient_auc(picked(val), labels, positive):.3f}"
        if len(test):
            line += f", test {patient_auc(picked(test), labels, positive):.3f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--positive", default=None)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--folds", type=int, nargs="*", default=None, help="default: every fold")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="a training setting, value as JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--patience", type=int, default=5, help="early stopping replayed for the train.monitor rules")
    parser.add_argument("--scored", action="store_true", help="train nothing: score OUT/probs.csv again")
    parser.add_argument("--unit", choices=["patient", "item"], default="patient", help="what an AUC scores")
    args = parser.parse_args()
    global UNIT
    UNIT = f"{args.unit}_id"
    torch.set_num_threads(args.threads)
    results = args.run_dir / "results"
    splits = read_splits(results / "splits.json")
    if args.scored:
        probs = pd.read_csv(args.out / "probs.csv")
        histories = {int(fold): pd.read_csv(args.out / f"history_{int(fold)}.csv") for fold in probs["fold"].unique()
                     if (args.out / f"history_{int(fold)}.csv").exists()}
        report(probs, list(splits["labels"]), args.positive, histories if len(histories) == probs["fold"].nunique()
               else None, args.patience)
        return

    config = default_recipe()
    for item in args.set:
        key, value = item.split("=", 1)
        config[key] = json.loads(value)
    table = read_frame_table(results / "frames.csv")
    if config.get("geometric") == AUTO:  # as rule plan decides it from this run's data
        config["geometric"] = plan_geometric(fingerprint(table, splits))["value"]
    settings = train_module.TrainSettings.from_config({**config, "epochs": args.epochs, "patience": args.epochs})
    print(settings, flush=True)
    frames = usable_frames(table, splits)
    store = classifier_store("full", {"full": sorted(str(p) for p in results.glob("denoise/shard_*/frames.npy"))})
    args.out.mkdir(parents=True, exist_ok=True)
    tables, histories = [], {}
    folds = args.folds if args.folds is not None else [int(fold["fold"]) for fold in splits["folds"]]
    for fold in folds:
        history, fold_tables = train_fold(frames, splits, fold, settings, store)
        history.to_csv(args.out / f"history_{fold}.csv", index=False)
        histories[fold] = history
        tables += fold_tables
        pd.concat(tables).to_csv(args.out / "probs.csv", index=False)
        print(f"fold {fold} done", flush=True)
    report(pd.concat(tables), list(splits["labels"]), args.positive, histories, args.patience)


if __name__ == "__main__":
    main()
