"""Rule ingest: frames, masks, frame table and previews for one shard of items."""

import pandas as pd

from sonoflow.frames import IngestSettings, ShardOutputs, ingest_shard
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    rows = pd.DataFrame.from_records(snakemake.params.rows)
    outputs = ShardOutputs(frames=snakemake.output.frames, masks=snakemake.output.masks, table=snakemake.output.table,
                           previews=snakemake.output.previews)
    table = ingest_shard(rows, IngestSettings.from_config(snakemake.params.settings), outputs)
    log.info("shard %s: %d items -> %d frames", snakemake.wildcards.shard, len(rows), len(table))
