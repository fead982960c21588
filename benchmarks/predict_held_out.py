"""Predict a finished run's own test patients as if they were new cases, and compare with what
evaluation reported for them (they must agree: same frames, same models, same aggregation).

    python benchmarks/predict_held_out.py RUN      # RUN: a finished run's working directory
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sonoflow.metrics import aggregate, read_predictions  # noqa: E402
from sonoflow.predict import unlabelled_sheet  # noqa: E402
from sonoflow.split import read_splits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--sheet", type=Path, help="the run's sample sheet (default: the demo's)")
    args = parser.parse_args()
    run = args.run.resolve()
    manifest = json.loads((run / "results/manifest.json").read_text())
    labels = manifest["config"]["labels"]
    splits = read_splits(run / "results/splits.json")
    if not splits["test"]:
        sys.exit("the run has no test patients")
    sheet = args.sheet or run / "results/demo/samples.csv"
    rows = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    item_truth = rows.set_index("item_id")["label"]
    patient_truth = rows.drop_duplicates("patient_id").set_index("patient_id")["label"]
    new_cases = run / "held_out_new_cases.csv"
    unlabelled_sheet(sheet, splits["test"]).to_csv(new_cases, index=False)
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"), "-d", str(run),
                    "--cores", "all", "predict", "--config", f"predict={{samples: {new_cases}}}"], check=True)
    seconds = time.perf_counter() - start
    columns = [f"prob_{label}" for label in labels]
    for folder in sorted((run / "results/predict/held_out_new_cases").glob("*/*/items.csv")):
        name = f"{folder.parent.parent.name}/{folder.parent.name}"
        items = pd.read_csv(folder, dtype={"item_id": str, "patient_id": str}).set_index("item_id")
        evaluated = aggregate(read_predictions(run / f"results/evaluate/{name}/predictions_test.csv"), labels,
                              by="item_id").set_index("item_id")
        difference = np.abs(items.loc[evaluated.index, columns].to_numpy() - evaluated[columns].to_numpy()).max()
        patients = pd.read_csv(folder.with_name("patients.csv"), dtype={"patient_id": str}).set_index("patient_id")
        items_right = int((items["predicted"] == item_truth.reindex(items.index)).sum())
        patients_right = int((patients["predicted"] == patient_truth.reindex(patients.index)).sum())
        print(f"{name}: largest difference to evaluation's item probabilities {difference:.1e}; predicted right: "
              f"{items_right} of {len(items)} items, {patients_right} of {len(patients)} patients")
    print(f"predict target: {seconds:.0f} s")


if __name__ == "__main__":
    main()
