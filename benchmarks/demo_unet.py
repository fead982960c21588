"""The demo's U-Net alone, for tuning its settings: trains it on a finished run's frames and split
(as rule train_segmenter does) and scores it on the test patients' lesion frames (as
segment_metrics does), with this process's CPU seconds. One thread, so CPU time is comparable on a
shared machine.

    python benchmarks/demo_unet.py RUN ['{input_size: 96, epochs: 20}']   # overrides of config.yaml's segment
"""
import json, sys, time, resource
from pathlib import Path
import numpy as np, torch
from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.segment import (SegmentSettings, masked_frames, segmenter_partition, train_segmenter, predict_masks,
                              postprocess, segmentation_table, segmentation_summary)
from sonoflow.split import usable_frames
import yaml
torch.set_num_threads(1)
root = Path(sys.argv[1]) / "results"
base = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config.yaml"))["segment"]
overrides = yaml.safe_load(sys.argv[2]) if len(sys.argv) > 2 else {}
conf = {k: v for k, v in {**base, **overrides}.items() if k not in ("enabled", "per_fold", "gpu", "threads")}
settings = SegmentSettings.from_config(conf)
splits = json.loads((root / "splits.json").read_text())
frames = usable_frames(read_frame_table(root / "frames.csv"), splits)
shards = sorted(root.glob("denoise/shard_*/frames.npy"))
images = FrameStore.from_paths([str(p) for p in shards])
masks = FrameStore.from_paths([str(root / "ingest" / p.parent.name / "masks.npy") for p in shards])
partition = segmenter_partition(frames, splits, "all", settings)
tr, va = masked_frames(frames, partition, "train"), masked_frames(frames, partition, "val")
t0 = time.process_time(); w0 = time.perf_counter()
result = train_segmenter(images.gather(tr), masks.gather(tr), images.gather(va), masks.gather(va), settings)
cpu = time.process_time() - t0; wall = time.perf_counter() - w0
has_mask = frames["has_mask"].astype(str).str.lower() == "true"
test = frames[has_mask & frames["patient_id"].isin(splits["test"])]
pred = np.stack([postprocess(p, settings) for p in predict_masks(result.model, images.gather(test), settings)])
summary = segmentation_summary(segmentation_table(test, pred, masks.gather(test))).set_index("label")
h = result.history
print(f"{overrides} train {len(tr)} val {len(va)} epochs_run {len(h)} best {result.best_epoch} cpu {cpu:.0f}s wall {wall:.0f}s "
      f"test Dice all lesions {summary.loc['all lesions','dice_mean']:.3f} ({int(summary.loc['all lesions','frames'])} frames) "
      f"per class {summary['dice_mean'].round(3).to_dict()}")
print(h[["epoch","train_loss","val_loss","val_dice","seconds"]].round(3).to_string())
