"""Rule compare: every trained run side by side (one table with 95% CIs and DeLong p against the
best), paired DeLong and McNemar tests between every two runs, and their ROC curves together."""

from sonoflow.evaluate import (EvaluateSettings, at_level, base_question, compare_runs, for_people, model_table,
                               read_decision, read_headline, read_headline_predictions)
from sonoflow.figures import comparison_figure, interval_figure
from sonoflow.io import save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = EvaluateSettings.from_config(snakemake.params.settings)
    names, labels = snakemake.params.runs, snakemake.params.labels
    # The held-out test patients when every run has them, else the pooled validation folds.
    part, predictions = read_headline_predictions(snakemake.input.predictions_test, snakemake.input.predictions_cv)
    tables = dict(zip(names, predictions))
    decisions = [read_decision(path) for path in snakemake.input.thresholds]
    unit = decisions[0]["unit"]  # patient, or item when patients carry several labels (the same for every run)
    thresholds = [decision["thresholds"][unit] for decision in decisions]
    pairwise = compare_runs(tables, labels, settings, dict(zip(names, thresholds)), level=unit)
    save_csv(snakemake.output.table, for_people(pairwise.assign(part=part)))
    models = model_table({name: read_headline(path) for name, path in zip(names, snakemake.input.headlines)},
                         pairwise, part)
    save_csv(snakemake.output.models, for_people(models))
    where = "test patients, fold ensembles" if part == "test" else "pooled out-of-fold predictions"
    comparison_figure(snakemake.output.roc, {name: at_level(table, labels, unit, settings.pooling[0], settings.topk)
                                             for name, table in tables.items()},
                      base_question(labels, settings), f"runs compared at {unit} level ({where})")
    interval_figure(snakemake.output.intervals, models, f"AUC with 95% CI ({where})")
    log.info("%s part\n%s\n%s", part, for_people(models).to_string(index=False),
             for_people(pairwise).to_string(index=False))
