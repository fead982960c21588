"""Rule train_segmenter: a U-Net on the masked frames of the patients this segmenter may use; resumes from its
saved state after a kill."""

from pathlib import Path

import torch

from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.segment import (SegmentSettings, masked_frames, save_segmenter, segmenter_partition, train_segmenter,
                              with_roi_scale)
from sonoflow.split import read_splits, usable_frames

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    settings = SegmentSettings.from_config(snakemake.params.settings)
    splits = read_splits(snakemake.input.splits)
    frames = usable_frames(read_frame_table(snakemake.input.frames), splits)
    partition = segmenter_partition(frames, splits, snakemake.wildcards.segmenter, settings)
    images, masks = FrameStore.from_paths(snakemake.input.arrays), FrameStore.from_paths(snakemake.input.masks)
    parts = {name: masked_frames(frames, partition, name) for name in ("train", "val")}
    log.info("segmenter %s: %s", snakemake.wildcards.segmenter, ", ".join(
        f"{name} {part['patient_id'].nunique()} patients / {len(part)} masked frames" for name, part in parts.items()))
    train_masks = masks.gather(parts["train"])
    settings = with_roi_scale(settings, train_masks)
    resume_state = Path(snakemake.params.resume_state)
    result = train_segmenter(images.gather(parts["train"]), train_masks,
                             images.gather(parts["val"]), masks.gather(parts["val"]), settings, resume_path=resume_state)
    save_csv(snakemake.output.history, result.history)
    save_segmenter(snakemake.output.model, result.model, settings, partition, result.best_epoch)
    resume_state.unlink(missing_ok=True)  # finished: the next run of this job starts afresh
