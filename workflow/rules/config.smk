# The configuration, checked and planned before any rule is defined, and the run's warnings.
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("9.10")

# (The Snakefile has put the library, next to it, first on sys.path.)
from sonoflow.config import CONFIG_SCHEMA, DEMO_NOTICE, ConfigKeyError, check_config_keys, load_schema
from sonoflow.config import uses_demo as config_uses_demo
from sonoflow.presets import run_notes, run_warnings
from sonoflow.plan import apply_plan
from sonoflow.weights import weights_problems


# `--config data=sheet.csv` is shorthand for `samples=sheet.csv` (the presets' documented form).
if isinstance(config.get("data"), str):
    config["samples"], config["data"] = config["data"], {"layout": ""}

# A misspelt key (top-level or nested) stops the run in one line with the closest known key,
# before the schema's validation (whose messages print the whole sub-schema).
try:
    check_config_keys(config, load_schema(CONFIG_SCHEMA))
except ConfigKeyError as error:
    raise WorkflowError(str(error)) from None
validate(config, schema=str(CONFIG_SCHEMA))
if config_uses_demo(config):
    logger.warning(DEMO_NOTICE)

# `auto` sizes resolved once, here, before any rule reads them (the demo's or the data's).
PLAN = apply_plan(config, config_uses_demo(config))
logger.info("plan: " + "; ".join(f"{entry['key']} {entry['value']}" + (" (planned)" if entry["planned"] else "")
                                  for entry in PLAN))



def planned(key):
    """Whether the config left ``key`` to the plan (``auto``)."""
    return any(entry["key"] == key and entry["planned"] for entry in PLAN)


# Self-supervised pretraining starts each fold's classifier, so it cannot also start from another run.
_chained = sorted(model for model in config["train"]["models"] if config["train"].get("init_from", {}).get(model))
if config["pretrain"]["enabled"] and _chained:
    raise WorkflowError(f"pretrain.enabled and train.init_from both start {', '.join(_chained)}: choose one")

_weights_problems = weights_problems(config)
if _weights_problems:
    raise WorkflowError("pretrained weights missing (nothing was run):\n  " + "\n  ".join(_weights_problems))

# Every warning about the run as a whole, logged and kept for the report's landing page.
RUN_WARNINGS = []


def warn(message):
    if message not in RUN_WARNINGS:
        RUN_WARNINGS.append(message)
        logger.warning(message)


if run_notes(config):
    logger.info(run_notes(config))
for warning in run_warnings(config):
    warn(warning)
