"""DAG construction at scale: `snakemake -n` on generated sheets of 1k, 10k and 100k image items.

The items are symbolic links to one tiny PNG, so the sheet is realistic for validation (every row
is a distinct file that is stat-ed and probed) without using disk. Each size runs twice: a cold
run that probes every file, and a warm run that finds the probes in the cache, as every later
invocation does. Prints seconds and the number of jobs: the job count must grow with shards,
not items (goal: 100k items under 30 s). The baseline in the same run is the dry run of the
smallest sheet, and each line prints its time relative to it.

    python benchmarks/bench_dag.py [--sizes 1000 10000 100000] [--shards 64]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
LABELS = ["benign", "malignant"]


def make_items(folder: Path, n_items: int) -> Path:
    """A sheet of n_items tiny PNG items, 10 items per patient, as hard links of one file."""
    images = folder / "images"
    images.mkdir(parents=True)
    source = folder / "one.png"
    cv2.imwrite(str(source), np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8))
    lines = ["patient_id,item_id,path,label,mask,split"]
    for index in range(n_items):
        name = f"item{index:06d}"
        os.symlink(source, images / f"{name}.png")
        patient = index // 10
        lines.append(f"P{patient:05d},{name},images/{name}.png,{LABELS[patient % 2]},,")
    sheet = folder / "samples.csv"
    sheet.write_text("\n".join(lines) + "\n")
    return sheet


def dry_run(workdir: Path, sheet: Path, shards: int) -> tuple[float, int]:
    config = workdir / "bench_config.yaml"
    config.write_text(yaml.safe_dump({"samples": str(sheet), "labels": LABELS, "shards": shards,
                                      "probe_cache": str(workdir / "probe.sqlite")}))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(REPO / "sonoflow/resources/config.yaml"), str(config), "--cores", "1", "--dry-run"]
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    # One "rule NAME:" block per planned job (the stats table is not printed by every version).
    return seconds, len(re.findall(r"^(?:local)?(?:rule|checkpoint) \w+:$", result.stdout, re.MULTILINE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--shards", type=int, default=64)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"n{size}"
            sheet = make_items(folder, size)
            cold = dry_run(folder, sheet, args.shards)
            warm = dry_run(folder, sheet, args.shards)
            rows.append((size, cold, warm))
    base = rows[0][2][0]
    print(f"snakemake -n, {args.shards} shards; baseline = warm run at {rows[0][0]} items ({base:.1f} s)")
    print(f"{'items':>8} {'jobs':>6} {'cold s':>8} {'warm s':>8} {'warm / baseline':>16}")
    for size, (cold_s, jobs), (warm_s, _) in rows:
        print(f"{size:>8} {jobs:>6} {cold_s:>8.1f} {warm_s:>8.1f} {warm_s / base:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
