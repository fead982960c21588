"""Rule dedup: verified near-duplicate pairs across items, their groups, and a figure to check them."""

import numpy as np

from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.dedup import DedupSettings, duplicate_groups, near_duplicates
from sonoflow.figures import pairs_figure
from sonoflow.io import save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = DedupSettings.from_config(snakemake.params.settings)
    frames = read_frame_table(snakemake.input.frames).sort_values(["shard", "row"]).reset_index(drop=True)
    embeddings = np.concatenate([np.load(path) for path in sorted(snakemake.input.embeddings)])
    store = FrameStore.from_paths(snakemake.input.arrays)
    pairs = near_duplicates(frames, embeddings, store, settings)
    save_csv(snakemake.output.pairs, pairs)
    save_csv(snakemake.output.groups, duplicate_groups(pairs))
    pairs_figure(snakemake.output.figure, pairs, store)
    crossing = pairs[pairs["crosses_patients"]]
    if len(crossing):
        log.warning("%d near-duplicate item pairs under different patient ids (policy %s), e.g. %s", len(crossing),
                    settings.policy, ", ".join(f"{a}~{b}" for a, b in zip(crossing["item_a"], crossing["item_b"]))[:300])
