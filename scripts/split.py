"""Rule split: held-out test patients and patient-grouped folds, with a report per part.

Near-duplicate pairs, when read: with policy `group`, patients linked by a duplicate share one
split group; with `drop`, all but one item of each duplicate group take no part; with
`conflicts: drop`, every item of a duplicate group whose labels disagree takes no part.
Burned-in marks, when read (`audit.marks: drop`): the frames that carry them take no part."""

from sonoflow.audit import marked_frames, read_marks
from sonoflow.dataset import read_frame_table
from sonoflow.dedup import conflicting_items, dropped_items, patient_groups, read_pairs
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.split import SplitSettings, make_splits, split_report, usable_frames, write_splits

with log_to(snakemake.log[0]) as log:
    frames = read_frame_table(snakemake.input.frames)
    policy, conflicts = snakemake.params.dedup_policy, snakemake.params.dedup_conflicts
    pairs = read_pairs(snakemake.input.pairs[0]) if snakemake.input.pairs else None
    groups = patient_groups(pairs) if pairs is not None and policy == "group" else None
    duplicates = dropped_items(pairs) if pairs is not None and policy == "drop" else []
    conflicting = conflicting_items(pairs) if pairs is not None and conflicts == "drop" else []
    if conflicting:
        log.warning("dedup.conflicts drop: %d items of near-duplicate groups with disagreeing labels left out: %s",
                    len(conflicting), ", ".join(conflicting)[:300])
    marked = marked_frames(read_marks(snakemake.input.marks)) if snakemake.input.marks else []
    if marked:
        log.warning("audit.marks drop: %d frames with burned-in marks left out", len(marked))
    splits = make_splits(frames, snakemake.params.labels, SplitSettings.from_config(snakemake.params.settings),
                         groups=groups, excluded_items=sorted(set(duplicates) | set(conflicting)), excluded_frames=marked)
    write_splits(snakemake.output.splits, splits)  # checked again as it is written
    save_csv(snakemake.output.report, split_report(usable_frames(frames, splits), splits))
    log.info("%d test patients, %d folds; near-duplicates: policy %s, %d patients grouped, %d items dropped "
             "(%d duplicates, %d label conflicts); %d marked frames dropped", len(splits["test"]), len(splits["folds"]),
             policy, len(splits["groups"]), len(splits["excluded_items"]), len(duplicates), len(conflicting), len(marked))
