"""Rule segment: predicted lesion masks and ROI crops for every frame of one shard."""

import torch

from sonoflow.io import load_npy, save_csv, save_npy
from sonoflow.logs import log_to
from sonoflow.segment import load_segmenter, segment_frames

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    model, settings, _ = load_segmenter(snakemake.input.model)
    masks, rois, table = segment_frames(model, load_npy(snakemake.input.frames), settings)
    save_npy(snakemake.output.masks, masks)
    save_npy(snakemake.output.rois, rois)
    save_csv(snakemake.output.table, table)  # last: a complete table means complete arrays
    log.info("shard %s: %d frames, %d with a predicted lesion", snakemake.wildcards.shard, len(table),
             int(table["has_roi"].sum()))
