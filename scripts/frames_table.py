"""Rule frames_table: one table of every ingested frame, with its shard."""

from sonoflow.dataset import combine_frame_tables
from sonoflow.io import save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    table = combine_frame_tables(snakemake.input.tables)
    save_csv(snakemake.output.table, table)
    log.info("%d frames from %d items of %d patients", len(table), table["item_id"].nunique(), table["patient_id"].nunique())
