"""Rule segment_metrics: Dice, IoU and HD95 of one segmenter on patients it never trained on."""

from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.io import for_people, save_csv
from sonoflow.logs import log_to
from sonoflow.figures import segmentation_overlay_figure
from sonoflow.segment import evaluation_frames, segmentation_summary, segmentation_table
from sonoflow.split import read_splits

with log_to(snakemake.log[0]) as log:
    frames = read_frame_table(snakemake.input.frames)
    chosen, part = evaluation_frames(frames, read_splits(snakemake.input.splits), snakemake.input.model)
    images = FrameStore.from_paths(snakemake.input.images).gather(chosen)
    truth = FrameStore.from_paths(snakemake.input.truth).gather(chosen)
    predicted = FrameStore.from_paths(snakemake.input.predicted).gather(chosen)
    table = segmentation_table(chosen, predicted, truth).assign(part=part)
    summary = segmentation_summary(table).assign(part=part)
    save_csv(snakemake.output.table, for_people(table))
    save_csv(snakemake.output.summary, for_people(summary))
    segmentation_overlay_figure(snakemake.output.overlays, images, truth, predicted, table)
    log.info("%s patients:\n%s", part, for_people(summary).to_string(index=False))
