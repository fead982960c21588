"""Rule compare: paired DeLong and McNemar tests between every two trained runs."""

import json
from pathlib import Path

from sonoflow.evaluate import EvaluateSettings, compare_runs
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.metrics import read_predictions

with log_to(snakemake.log[0]) as log:
    settings = EvaluateSettings.from_config(snakemake.params.settings)
    names = snakemake.params.runs
    tests = [read_predictions(path) for path in snakemake.input.predictions_test]
    # The held-out test patients when there are any, else the pooled validation folds.
    part = "test" if all(len(table) for table in tests) else "cv"
    tables = tests if part == "test" else [read_predictions(path) for path in snakemake.input.predictions_cv]
    thresholds = [json.loads(Path(path).read_text())["thresholds"]["patient"] for path in snakemake.input.thresholds]
    table = compare_runs(dict(zip(names, tables)), snakemake.params.labels, settings, dict(zip(names, thresholds)))
    save_csv(snakemake.output.table, table.assign(part=part))
    log.info("%s part\n%s", part, table.to_string(index=False))
