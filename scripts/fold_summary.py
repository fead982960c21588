"""Rule fold_summary: per-fold validation and test figures of one model, plus the fold ensemble."""

from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.metrics import fold_summary, read_predictions

with log_to(snakemake.log[0]) as log:
    summary = fold_summary(
        [read_predictions(path) for path in snakemake.input.predictions],
        [read_predictions(path) for path in snakemake.input.test_predictions],
        snakemake.params.labels,
    )
    save_csv(snakemake.output.summary, summary)
    log.info("\n%s", summary.to_string(index=False))
