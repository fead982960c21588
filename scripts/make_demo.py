"""Rule demo_data: generate the built-in synthetic ultrasound data set."""

from pathlib import Path

from sonoflow.demo import DemoSettings
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    sheet = DemoSettings.from_config(snakemake.params.settings).make(Path(snakemake.output.sheet).parent)
    log.info("demo: %d items of %d patients", len(sheet), sheet["patient_id"].nunique())
