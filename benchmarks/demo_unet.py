"""The demo's U-Net alone, for tuning its settings: trains it on a finished run's frames and split
(as rule train_segmenter does) and scores it on the test patients' lesion frames (as
segment_metrics does), with this process's CPU seconds. One thread, so CPU time is comparable on a
shared machine.

    python benchmarks/demo_unet.py RUN ['{input_size: 96, epochs: 20}']   # overrides of config.yaml's segment
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from sonoflow.config import DEFAULT_CONFIG
from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.segment import (SegmentSettings, masked_frames, postprocess, predict_masks, segmentation_summary,
                              segmentation_table, segmenter_partition, train_segmenter)
from sonoflow.split import read_splits, usable_frames


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    root = Path(sys.argv[1]) / "results"
    base = yaml.safe_load(DEFAULT_CONFIG.read_text())["segment"]
    overrides = yaml.safe_load(sys.argv[2]) if len(sys.argv) > 2 else {}
    settings = SegmentSettings.from_config(SegmentSettings.params({**base, **overrides}))
    splits = read_splits(root / "splits.json")
    frames = usable_frames(read_frame_table(root / "frames.csv"), splits)
    shards = sorted(root.glob("denoise/shard_*/frames.npy"))
    images = FrameStore.from_paths([str(path) for path in shards])
    masks = FrameStore.from_paths([str(root / "ingest" / path.parent.name / "masks.npy") for path in shards])
    partition = segmenter_partition(frames, splits, "all", settings)
    train, val = masked_frames(frames, partition, "train"), masked_frames(frames, partition, "val")
    cpu, wall = time.process_time(), time.perf_counter()
    result = train_segmenter(images.gather(train), masks.gather(train), images.gather(val), masks.gather(val), settings)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    has_mask = frames["has_mask"].astype(str).str.lower() == "true"
    test = frames[has_mask & frames["patient_id"].isin(splits["test"])]
    predicted = np.stack([postprocess(p, settings) for p in predict_masks(result.model, images.gather(test), settings)])
    summary = segmentation_summary(segmentation_table(test, predicted, masks.gather(test))).set_index("label")
    lesions = summary.loc["all lesions"]
    print(f"{overrides} train {len(train)} val {len(val)} masked frames; {len(result.history)} epochs, best "
          f"{result.best_epoch}; {cpu:.0f} CPU s, {wall:.0f} s wall; test Dice over lesion frames "
          f"{lesions['dice_mean']:.3f} ({int(lesions['frames'])} frames); per class {summary['dice_mean'].round(3).to_dict()}")
    print(result.history[["epoch", "train_loss", "val_loss", "val_dice", "seconds"]].round(3).to_string())


if __name__ == "__main__":
    main()
