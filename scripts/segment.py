"""Rule segment: predicted lesion masks, ROI crops, and the best lesion mask of every frame of one shard."""

import torch

from sonoflow.dataset import read_frame_table
from sonoflow.io import load_npy, save_csv, save_npy
from sonoflow.logs import log_to
from sonoflow.segment import lesion_views, load_segmenter, segment_frames

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    model, settings, _ = load_segmenter(snakemake.input.model)
    masks, rois, table = segment_frames(model, load_npy(snakemake.input.frames), settings)
    shard = read_frame_table(snakemake.input.table).sort_values("row")
    lesions, roi_lesions, source = lesion_views(load_npy(snakemake.input.truth), shard["has_mask"].to_numpy(bool),
                                                masks, table, settings.margin)
    save_npy(snakemake.output.masks, masks)
    save_npy(snakemake.output.rois, rois)
    save_npy(snakemake.output.lesions, lesions)
    save_npy(snakemake.output.roi_lesions, roi_lesions)
    save_csv(snakemake.output.table, table.assign(lesion_source=source))  # last: complete table, complete arrays
    log.info("shard %s: %d frames, %d with a predicted lesion", snakemake.wildcards.shard, len(table),
             int(table["has_roi"].sum()))
