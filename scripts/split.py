"""Rule split: held-out test patients and patient-grouped folds, with a report per part."""

from sonoflow.dataset import read_frame_table
from sonoflow.io import save_csv, save_json
from sonoflow.logs import log_to
from sonoflow.split import SplitSettings, check_splits, make_splits, split_report

with log_to(snakemake.log[0]) as log:
    frames = read_frame_table(snakemake.input.frames)
    splits = make_splits(frames, snakemake.params.labels, SplitSettings.from_config(snakemake.params.settings))
    check_splits(splits)
    save_json(snakemake.output.splits, splits)
    save_csv(snakemake.output.report, split_report(frames, splits))
    log.info("%d test patients, %d folds", len(splits["test"]), len(splits["folds"]))
