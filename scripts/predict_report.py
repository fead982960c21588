"""Rule predict_report: one self-contained HTML page with every run's predictions and overlays."""

from sonoflow.io import save_text
from sonoflow.logs import log_to
from sonoflow.evaluate import read_decision
from sonoflow.report import prediction_page

with log_to(snakemake.log[0]) as log:
    names = snakemake.params.runs
    runs = {name: {"items": items, "patients": patients, "overlays": overlays, "decision": read_decision(decision)}
            for name, items, patients, overlays, decision in zip(names, snakemake.input.per_item,
                                                                 snakemake.input.per_patient, snakemake.input.overlays,
                                                                 snakemake.input.thresholds)}
    positive = next(iter(runs.values()))["decision"]["positive"] if runs else ()
    save_text(snakemake.output.report, prediction_page(snakemake.wildcards.batch, snakemake.params.sheet, runs,
                                                       snakemake.params.labels, positive))
    log.info("%d runs reported", len(runs))
