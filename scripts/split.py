"""Rule split: held-out test patients and patient-grouped folds, with a report per part.

With near-duplicate pairs and policy `group`, patients linked by a duplicate share one split
group; with `drop`, all but one item of each duplicate group take no part."""

from sonoflow.dataset import read_frame_table
from sonoflow.dedup import dropped_items, patient_groups, read_pairs
from sonoflow.io import save_csv, save_json
from sonoflow.logs import log_to
from sonoflow.split import SplitSettings, check_splits, make_splits, split_report, usable_frames

with log_to(snakemake.log[0]) as log:
    frames = read_frame_table(snakemake.input.frames)
    policy = snakemake.params.dedup_policy
    pairs = read_pairs(snakemake.input.pairs[0]) if snakemake.input.pairs else None
    groups = patient_groups(pairs) if pairs is not None and policy == "group" else None
    excluded = dropped_items(pairs) if pairs is not None and policy == "drop" else []
    splits = make_splits(frames, snakemake.params.labels, SplitSettings.from_config(snakemake.params.settings),
                         groups=groups, excluded_items=excluded)
    check_splits(splits)
    save_json(snakemake.output.splits, splits)
    save_csv(snakemake.output.report, split_report(usable_frames(frames, splits), splits))
    log.info("%d test patients, %d folds; near-duplicates: policy %s, %d patients grouped, %d items dropped",
             len(splits["test"]), len(splits["folds"]), policy, len(splits["groups"]), len(splits["excluded_items"]))
