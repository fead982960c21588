"""Rule manifest: what produced these results (config, versions, git revision, data hashes)."""

from sonoflow.io import save_json
from sonoflow.logs import log_to
from sonoflow.report import run_manifest

with log_to(snakemake.log[0]):
    save_json(snakemake.output.manifest, run_manifest(snakemake.params.config, snakemake.params.workflow_dir,
                                                      snakemake.params.sheet, snakemake.input.arrays))
