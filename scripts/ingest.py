"""Rule ingest: frames, masks, frame table and previews for one shard of items."""

from pathlib import Path

import pandas as pd

from sonoflow.frames import IngestSettings, ingest_shard
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    rows = pd.DataFrame.from_records(snakemake.params.rows)
    table = ingest_shard(rows, IngestSettings.from_config(snakemake.params.settings), Path(snakemake.output.frames).parent)
    log.info("shard %s: %d items -> %d frames", snakemake.wildcards.shard, len(rows), len(table))
