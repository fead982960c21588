"""Rule dedup_crossing: near-duplicate pairs that still lie on two sides of the split, per fold,
and what each near-duplicate policy would leave of them (test items with a copy on the training side)."""

from sonoflow.dataset import read_frame_table
from sonoflow.dedup import crossing_pairs, policy_effects, read_pairs
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.split import SplitSettings, read_splits

with log_to(snakemake.log[0]) as log:
    pairs = read_pairs(snakemake.input.pairs)
    table = crossing_pairs(pairs, read_splits(snakemake.input.splits))
    save_csv(snakemake.output.crossing, table)
    policies = policy_effects(read_frame_table(snakemake.input.frames), pairs, snakemake.params.labels,
                              SplitSettings.from_config(snakemake.params.split), snakemake.params.conflicts)
    save_csv(snakemake.output.policies, policies)
    log.info("\n%s\ntest items with a near-duplicate on the training side, per policy:\n%s",
             table.to_string(index=False), policies.to_string(index=False))
