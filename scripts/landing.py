"""Rule landing: the report's first page (headline of every run, warnings, near-duplicates)."""

from sonoflow.io import read_json_object
from sonoflow.logs import log_to
from sonoflow.plan import merge_plans
from sonoflow.report import write_landing

with log_to(snakemake.log[0]):
    write_landing(snakemake.output.landing, snakemake.params.runs, snakemake.input.headlines, snakemake.input.thresholds,
                  source=snakemake.params.source, demo=snakemake.params.demo, warnings=snakemake.params.warnings,
                  log_folder=snakemake.params.log_folder, skip_logs=[snakemake.log[0]],
                  pairs=snakemake.input.get("pairs"), crossing=snakemake.input.get("crossing"),
                  dedup_policy=snakemake.params.dedup_policy, audit=snakemake.input.get("audit"),
                  plan=merge_plans(snakemake.params.plan, read_json_object(snakemake.input.plan, "a plan file")))
