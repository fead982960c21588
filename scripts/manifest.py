"""Rule manifest: what produced these results (config, versions, git revision, data hashes), the
data's source (the built-in demo said so), every package the run's scripts import and, where
CUDA is available, its versions, driver and GPUs."""

from pathlib import Path

from sonoflow.config import data_source
from sonoflow.io import read_json_object, save_json
from sonoflow.logs import log_to
from sonoflow.plan import merge_plans
from sonoflow.report import run_manifest
from sonoflow.stack import cuda_stack, imported_packages

with log_to(snakemake.log[0]):
    manifest = run_manifest(snakemake.params.config, snakemake.params.workflow_dir, snakemake.params.sheet,
                            snakemake.input.arrays)
    manifest["data_source"] = data_source(snakemake.params.config)
    data_plan = read_json_object(snakemake.input.plan, "a plan file")
    manifest["plan"] = merge_plans(snakemake.params.plan, data_plan)
    manifest["fingerprint"] = data_plan["fingerprint"]
    manifest["packages_imported"] = imported_packages(sorted(Path(snakemake.params.workflow_dir, "scripts").glob("*.py")))
    manifest["cuda"] = cuda_stack()
    save_json(snakemake.output.manifest, manifest)
