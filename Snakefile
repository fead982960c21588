# sonoflow: ultrasound videos and images -> validated, explained lesion classifiers.
# Run the built-in demo:  snakemake --cores all        (settings: sonoflow/resources/config.yaml)
import sys

# The library sits next to the Snakefile; importable even when not pip-installed.
sys.path.insert(0, workflow.basedir)

from sonoflow.config import DEFAULT_CONFIG


# The defaults (the library's package data, sonoflow/resources/config.yaml), wherever the working
# directory (-d) is; --configfile files and --config layer over them.
configfile: str(DEFAULT_CONFIG)


report: "workflow/report/workflow.rst"


include: "workflow/rules/config.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/denoise.smk"
include: "workflow/rules/dedup.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/cam.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"


# Jobs that only turn small CSV/JSON tables into HTML pages (or join per-shard tables) run in the
# snakemake process itself under a cluster executor: each costs well under a second of work, and an
# sbatch submission plus its status polls costs far more. Everything that reads frames, masks or
# models stays a cluster job.
localrules:
    all,
    frames_table,
    ingest_page,
    split_page,
    dedup_page,
    segment_page,
    evaluate_pages,
    compare_pages,
    readers_pages,
    cam_page,
    landing,


rule all:
    input:
        all_targets,
    default_target: True
