"""Rule readers: human readers' calls scored like the model and compared with it on the same cases."""

from sonoflow.evaluate import (EvaluateSettings, evaluate_readers, for_people, read_decision, read_headline_predictions,
                               read_readers)
from sonoflow.io import save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = EvaluateSettings.from_config(snakemake.params.settings)
    _, (model,) = read_headline_predictions([snakemake.input.predictions_test], [snakemake.input.predictions_cv])
    readers = read_readers(snakemake.input.readers)
    level = "image" if "item_id" in readers.columns else "patient"
    # Per patient: the patient-level threshold (none when the run scored items: 0.5 is used).
    threshold = read_decision(snakemake.input.thresholds)["thresholds"].get(level)
    metrics, comparison = evaluate_readers(readers, model, snakemake.params.labels, settings, threshold)
    save_csv(snakemake.output.metrics, for_people(metrics))
    save_csv(snakemake.output.comparison, for_people(comparison))
    log.info("\n%s", for_people(comparison).to_string(index=False))
