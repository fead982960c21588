"""Counts of a finished dedup stage (results/dedup/) on a real data set, for the README.

    python benchmarks/real_dedup.py RUN_DIR [--ctrus-folds]

--ctrus-folds also counts the pairs that C-TRUS's own `testitem_in_fold` column (a frame-level
split, not grouped by patient) puts on two sides of a fold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from sonoflow.dedup import read_pairs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    results = Path(sys.argv[1]) / "results" / "dedup"
    pairs = read_pairs(results / "pairs.csv")
    groups = pd.read_csv(results / "groups.csv", dtype={"item_id": str})
    print(f"{len(pairs)} near-duplicate item pairs in {groups['group'].nunique()} groups over {len(groups)} items; "
          f"{int(pairs['crosses_patients'].sum())} across patients; correlation "
          f"{pairs['correlation'].min():.2f}-{pairs['correlation'].max():.2f}, "
          f"{int((pairs['correlation'] > 0.999).sum())} identical")
    print(pd.read_csv(results / "crossing.csv").to_string(index=False))
    if "--ctrus-folds" in sys.argv:
        table = pd.read_csv(DATA / "ctrus" / "c-trus.csv")
        fold_of = dict(zip(table["file"].str.replace(".jpg", "", regex=False), table["testitem_in_fold"]))
        straddling = pairs["item_a"].map(fold_of) != pairs["item_b"].map(fold_of)
        print(f"C-TRUS testitem_in_fold: {int(straddling.sum())} of {len(pairs)} pairs have one frame in a fold's "
              f"test part and the other in its training part")
    return 0


if __name__ == "__main__":
    sys.exit(main())
