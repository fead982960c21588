"""Recipes side by side and averaged, from benchmarks/recipe_ablation.sh's outputs: is the mean of
two recipes' models better than either alone?

    python benchmarks/recipe_ensemble.py RUN_DIR OUT/default OUT/plain [--positive CLASS] [--unit item]
        [--monitor auc] [--patience 5]

Each OUT/VARIANT holds epoch_curves.py's `probs.csv` and `history_<fold>.csv` (every epoch's
validation, and test, probabilities of one training per fold). Per variant and fold the epoch the
training loop keeps is replayed (``--monitor``, ``--patience``: what a run keeps); the ensemble
averages the variants' kept probabilities frame by frame (the frames of a fold are in the same
order in every variant: the same partition of the same run). Printed, for the pooled out-of-fold
validation units and (when the run has them) the test fold ensemble: each variant's and the
ensemble's unit-level AUC (``--positive`` vs the rest, else macro one-vs-rest) with its 95% CI
(sonoflow's patient bootstrap, as in a run's headline), and the paired DeLong p of the ensemble
against each variant (binary questions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import epoch_curves
from sonoflow.metrics import Question, delong_test, with_confidence
from sonoflow.split import read_splits


def kept(variant: Path, monitor: str, patience: int) -> pd.DataFrame:
    """The variant's probabilities at the epoch its loop keeps, per fold."""
    probs = pd.read_csv(variant / "probs.csv")
    parts = []
    for fold in sorted(probs["fold"].unique()):
        history = pd.read_csv(variant / f"history_{int(fold)}.csv")
        epoch = epoch_curves.loop_pick(history, monitor, patience)
        parts.append(probs[(probs["fold"] == fold) & (probs["epoch"] == epoch)].assign(kept_epoch=epoch))
    return pd.concat(parts, ignore_index=True)


def auc_with_ci(unit_table: pd.DataFrame, labels: list[str], positive: str | None) -> tuple[float, float, float]:
    """The units' AUC and its 95% interval by sonoflow's own patient bootstrap (the headline's
    method, 2,000 resamples of the units)."""
    table = unit_table.rename(columns={f"p_{label}": f"prob_{label}" for label in labels})
    table = table.rename_axis("patient_id").reset_index()
    scored = with_confidence(table, Question(tuple(labels), (positive,) if positive else ()))
    row = scored[(scored["metric"] == "auc") & (scored["class"] == ("" if positive else "macro"))].iloc[0]
    return row["value"], row["ci_low"], row["ci_high"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("variants", type=Path, nargs="+")
    parser.add_argument("--positive", default=None)
    parser.add_argument("--unit", choices=["patient", "item"], default="patient")
    parser.add_argument("--monitor", choices=["auc", "loss"], default="auc")
    parser.add_argument("--patience", type=int, default=5)
    args = parser.parse_args()
    epoch_curves.UNIT = f"{args.unit}_id"
    labels = list(read_splits(args.run_dir / "results/splits.json")["labels"])
    columns = [f"p_{label}" for label in labels]
    tables = {variant.name: kept(variant, args.monitor, args.patience) for variant in args.variants}
    first = next(iter(tables.values()))
    for name, table in tables.items():
        same = (table[["fold", "part", "item_id", "label"]].to_numpy() == first[["fold", "part", "item_id", "label"]].to_numpy())
        assert len(table) == len(first) and same.all(), f"{name}: not the same frames as {args.variants[0]}"
        print(f"{name}: kept epochs {table.groupby('fold')['kept_epoch'].first().tolist()}")
    ensemble = first.copy()
    ensemble[columns] = np.mean([table[columns].to_numpy() for table in tables.values()], axis=0)
    tables["ensemble"] = ensemble
    for part, title in (("val", "pooled out-of-fold"), ("test", "test fold ensemble")):
        scored = {name: epoch_curves.unit_table(table[table["part"] == part], labels) for name, table in tables.items()}
        if not len(scored["ensemble"]):
            continue
        print(f"\n{title}, {args.unit} level ({len(scored['ensemble'])} units), monitor {args.monitor}:")
        for name, unit_table in scored.items():
            auc, low, high = auc_with_ci(unit_table, labels, args.positive)
            line = f"  {name:>16}: AUC {auc:.3f} (95% CI {low:.3f}-{high:.3f})"
            if args.positive and name != "ensemble":
                target = (scored["ensemble"]["label"] == args.positive).to_numpy()
                column = f"p_{args.positive}"
                _, _, p = delong_test(target, scored["ensemble"][column].to_numpy(), unit_table[column].to_numpy())
                line += f"; ensemble vs this: DeLong p {p:.3f}"
            print(line)


if __name__ == "__main__":
    main()
