"""Rule dedup_crossing: near-duplicate pairs that still lie on two sides of a split, per fold."""

import json
from pathlib import Path

from sonoflow.dedup import crossing_pairs, read_pairs
from sonoflow.io import save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    pairs = read_pairs(snakemake.input.pairs)
    table = crossing_pairs(pairs, json.loads(Path(snakemake.input.splits).read_text()))
    save_csv(snakemake.output.crossing, table)
    log.info("\n%s", table.to_string(index=False))
