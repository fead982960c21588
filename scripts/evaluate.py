"""Rule evaluate: one run's folds, headline metrics with 95% CIs, calibration, pooling methods,
thresholds and figures."""

import pandas as pd

from sonoflow.calibrate import at_bound
from sonoflow.evaluate import (EvaluateSettings, decision_record, evaluate_run, for_people, with_attention,
                               write_decision)
from sonoflow.figures import run_figures
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.metrics import read_predictions
from sonoflow.split import resolve_unit

with log_to(snakemake.log[0]) as log:
    labels, settings = snakemake.params.labels, EvaluateSettings.from_config(snakemake.params.settings)
    val_tables = [read_predictions(path) for path in snakemake.input.predictions_val]
    test_tables = [read_predictions(path) for path in snakemake.input.predictions_test]
    if snakemake.input.attention:  # evaluate.pooling lists attention: each fold's weights, validation then test
        weights = [read_predictions(path) for path in snakemake.input.attention]
        val_tables = with_attention(val_tables, weights[:len(val_tables)])
        test_tables = with_attention(test_tables, weights[len(val_tables):])
    unit, why = resolve_unit(pd.concat(val_tables + test_tables, ignore_index=True), settings.unit)
    log.info("scored unit: %s", why)
    evaluation = evaluate_run(val_tables, test_tables, labels, settings, unit)
    log.info("temperature %.4f (%s, fitted on the pooled validation folds)", evaluation.temperature, settings.calibration)
    if at_bound(evaluation.temperature):
        log.warning("the temperature %.4f is at the edge of its search range: the validation predictions are (nearly) "
                    "separable, too few errors to calibrate on; treat the calibrated probabilities with caution",
                    evaluation.temperature)
    title = f"{snakemake.wildcards.model}, {snakemake.wildcards.input} input"
    errors = run_figures(snakemake.output, evaluation, val_tables, [pd.read_csv(p) for p in snakemake.input.histories],
                         labels, settings, title)
    save_csv(snakemake.output.folds, for_people(evaluation.folds))
    save_csv(snakemake.output.headline, for_people(evaluation.headline))
    save_csv(snakemake.output.calibration_table, for_people(evaluation.calibration))
    save_csv(snakemake.output.pooling, for_people(evaluation.pooling))
    save_csv(snakemake.output.predictions_cv, evaluation.parts["cv"])
    # No test set: an empty table with the same columns, so the output always exists.
    save_csv(snakemake.output.predictions_test, evaluation.parts.get("test", evaluation.parts["cv"].iloc[:0]))
    write_decision(snakemake.output.thresholds, decision_record(evaluation, settings, errors))
    # The leakage check: near-duplicate pairs that still cross this run's split, per fold.
    leakage = (pd.read_csv(snakemake.input.crossing[0]) if snakemake.input.crossing else
               pd.DataFrame([{"fold": "all", "note": "near-duplicate check off (dedup.enabled: false)"}]))
    save_csv(snakemake.output.leakage, leakage)
    log.info("%s\n%s\ncalibration:\n%s\npooling:\n%s\nnear-duplicate pairs across the split:\n%s", title,
             for_people(evaluation.headline).to_string(index=False),
             for_people(evaluation.calibration).to_string(index=False),
             for_people(evaluation.pooling).to_string(index=False), leakage.to_string(index=False))
