"""Rule dedup: verified near-duplicate pairs across items, their groups, the pairs filed under two
labels (label conflicts), and figures to check them."""

import numpy as np

from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.dedup import (DedupSettings, conflict_summary, conflicting_items, duplicate_groups, label_conflicts,
                            near_duplicates)
from sonoflow.figures import pairs_figure
from sonoflow.io import save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = DedupSettings.from_config(snakemake.params.settings)
    frames = read_frame_table(snakemake.input.frames).sort_values(["shard", "row"]).reset_index(drop=True)
    embeddings = np.concatenate([np.load(path) for path in sorted(snakemake.input.embeddings)])
    store = FrameStore.from_paths(snakemake.input.arrays)
    pairs = near_duplicates(frames, embeddings, store, settings)
    conflicts = label_conflicts(pairs)
    save_csv(snakemake.output.pairs, pairs)
    save_csv(snakemake.output.groups, duplicate_groups(pairs))
    save_csv(snakemake.output.conflicts, conflicts)
    pairs_figure(snakemake.output.figure, pairs, store)
    pairs_figure(snakemake.output.conflicts_figure, conflicts, store, max_pairs=16,
                 title="label conflicts: near-duplicates filed under two labels", empty="no label conflicts")
    crossing = pairs[pairs["crosses_patients"]]
    if len(crossing):
        log.warning("%d near-duplicate item pairs under different patient ids (policy %s), e.g. %s", len(crossing),
                    settings.policy, ", ".join(f"{a}~{b}" for a, b in zip(crossing["item_a"], crossing["item_b"]))[:300])
    if len(conflicts):
        log.warning("%s; dedup.conflicts: %s%s", conflict_summary(conflicts), settings.conflicts,
                    f": the split drops {len(conflicting_items(pairs))} items of those groups"
                    if settings.conflicts == "drop" else " (kept: set dedup.conflicts: drop to remove them)")
    else:
        log.info("no label conflicts among %d near-duplicate item pairs", len(pairs))
