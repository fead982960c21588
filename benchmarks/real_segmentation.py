"""Lesion segmentation on real data: patient-level held-out Dice, IoU and HD95, and the wall time.

    python benchmarks/real_segmentation.py ctrus   # colon frames, masks (threshold > 127), 13 patients
    python benchmarks/real_segmentation.py ddti    # thyroid nodule crops, nodule masks, case = patient

Uses the library with the `segment` settings of config.yaml (overridable below): every frame
decoded once at `--size`, a share of the patients (by a stable hash of the id) held out and never
seen by the U-Net, early stopping on a patient-grouped part of the rest. The workflow's segment
stage does the same; these data sets have no per-patient class label for a full DAG run (C-TRUS's
only label, image quality, varies within a patient). Skips cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from sonoflow.config import DEFAULT_CONFIG
from sonoflow.frames import IngestSettings, ingest_item
from sonoflow.segment import (SegmentSettings, masked_frames, postprocess, predict_masks, segmentation_summary,
                              segmentation_table, segmenter_partition, train_segmenter)
from sonoflow.split import unit_hash

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import DATA, ctrus_sheet, ddti_sheet  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", choices=["ctrus", "ddti"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=None, help="default: config.yaml segment.epochs")
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"SKIP: {DATA} not found")
        return 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())["segment"]
    overrides = {"epochs": args.epochs, "encoder": args.encoder, "weights": args.weights, "input_size": args.size}
    settings = SegmentSettings.from_config({**config, **{k: v for k, v in overrides.items() if v is not None}})

    started = time.perf_counter()
    sheet = ctrus_sheet() if args.data == "ctrus" else ddti_sheet()
    sheet = sheet[sheet["mask"] != ""].reset_index(drop=True)
    geometry = IngestSettings(size=args.size, crop=False, max_frames=1)  # single frames, no UI around them
    items = [ingest_item(row.path, geometry, [row.mask]) for row in sheet.itertuples()]
    frames, masks = np.concatenate([i.frames for i in items]), np.concatenate([i.masks for i in items])
    table = sheet.assign(frame_index=0, has_mask=True, shard="00", row=range(len(sheet)))
    decoded = time.perf_counter() - started

    patients = sorted(table["patient_id"].unique(), key=lambda pid: unit_hash(args.seed, pid))
    test = patients[: max(1, round(args.test_fraction * len(patients)))]
    splits = {"test": test, "folds": [{"fold": 0, "train": patients[len(test):], "val": []}]}
    partition = segmenter_partition(table, splits, "all", settings)
    train, val = masked_frames(table, partition, "train"), masked_frames(table, partition, "val")
    held_out = table[table["patient_id"].isin(test)]
    assert not set(train["patient_id"]) & set(test), "no held-out patient's mask may train the U-Net"

    result = train_segmenter(frames[train.index], masks[train.index], frames[val.index], masks[val.index], settings)
    trained = time.perf_counter() - started
    predicted = np.stack([postprocess(p, settings) for p in predict_masks(result.model, frames[held_out.index], settings)])
    per_frame = segmentation_table(held_out, predicted, masks[held_out.index])
    summary = segmentation_summary(per_frame.assign(label="frames"))
    print(f"{args.data}: {len(table)} masked frames of {len(patients)} patients at {args.size} px; "
          f"U-Net {settings.encoder} ({settings.weights or 'random init'}), best epoch {result.best_epoch} of "
          f"{len(result.history)}")
    print(f"train {len(train)} frames / {train['patient_id'].nunique()} patients, early-stopping val {len(val)} / "
          f"{val['patient_id'].nunique()}, held out {len(held_out)} / {len(test)}: {', '.join(map(str, test))}")
    print(summary.round(3).to_string(index=False))
    print(f"wall time {time.perf_counter() - started:.0f} s (decode {decoded:.0f} s, training {trained - decoded:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
