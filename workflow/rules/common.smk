import re
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("9.10")

# (The Snakefile has put the library, next to it, first on sys.path.)
from sonoflow.config import CONFIG_SCHEMA, DEMO_NOTICE, ConfigKeyError, check_config_keys, load_schema
from sonoflow.config import uses_demo as config_uses_demo
from sonoflow.importers import load_layout
from sonoflow.presets import run_notes, run_warnings
from sonoflow.plan import apply_plan, per_fold_segmenters
from sonoflow.sheet import ProbeCache, SheetError, add_shards, read_sheet, relative_paths, sheet_digest, validate_sheet
from sonoflow.split import SplitSettings, check_enough_patients
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

DEMO_SHEET = "results/demo/samples.csv"
# Absolute: the sheet is validated inside input functions, after parsing has moved on.
SAMPLES_SCHEMA = str(Path(workflow.basedir) / "workflow/schemas/samples.schema.yaml")
SHARDS = [f"{index:02d}" for index in range(config["shards"])]
SHEET_COLUMNS = ["patient_id", "item_id", "path", "label", "mask", "split"]
FOLDS = list(range(config["split"]["folds"]))
MODELS = config["train"]["models"]

wildcard_constraints:
    shard=r"\d+",
    fold=r"\d+",
    model="|".join(MODELS),
    input="full|roi|both",
    segmenter=r"all|fold_\d+",
    batch=r"[A-Za-z0-9_.-]+",


def uses_demo():
    return config_uses_demo(config)


def sheet_source():
    """Where the rows come from, for messages and the run manifest."""
    if config["samples"]:
        return config["samples"]
    if not uses_demo():
        return f"{config['data']['layout']} layout at {config['data'].get('folder') or config['data'].get('csv')}"
    return DEMO_SHEET


_validated = {}


def samples():
    """The validated sample sheet with a `shard` column, read once per snakemake process.

    Every row is checked (labels, ids, files, decodability, masks) before any job that reads
    media is scheduled; a problem stops the run with the offending lines named.
    """
    if "sheet" not in _validated:
        try:
            if config["samples"]:
                rows = read_sheet(config["samples"])
            elif uses_demo():
                rows = read_sheet(checkpoints.demo_data.get().output.sheet)
            else:
                rows = load_layout(config["data"], base_dir=Path.cwd())
            checked = validate_sheet(
                rows,
                labels=config["labels"],
                sheet_name=Path(sheet_source()).name,
                probe_cache=ProbeCache(config["probe_cache"]),
                several_labels_per_patient=config["evaluate"].get("unit", "auto") != "patient",
            )
            # Too few patients per class for the folds is a sheet problem too: say so now.
            check_enough_patients(checked, config["labels"], SplitSettings.from_config(config["split"]))
        except (SheetError, ValueError) as error:
            raise WorkflowError(f"sample sheet {sheet_source()} is invalid:\n{error}")
        validate(checked[SHEET_COLUMNS], schema=SAMPLES_SCHEMA)
        # Jobs see paths relative to the working directory where they lie inside it, so a moved
        # working directory (results and demo data together) is not stale.
        _validated["sheet"] = add_shards(relative_paths(checked, Path.cwd(), inside_only=True), config["shards"])
    return _validated["sheet"]


def shard_rows(shard):
    sheet = samples()
    return sheet.loc[sheet["shard"] == int(shard), SHEET_COLUMNS].sort_values("item_id")


def shard_media(wildcards):
    """The files one ingest shard reads: a change to any of them reruns that shard only."""
    rows = shard_rows(wildcards.shard)
    masks = [path for field in rows["mask"] if field for path in field.split(";")]
    return {"media": rows["path"].tolist(), "masks": masks}


def shard_records(wildcards):
    """The shard's rows as plain records: params, so an edited row reruns its shard only."""
    return shard_rows(wildcards.shard).to_dict("records")


def dedup_pairs(wildcards):
    """The near-duplicate pairs the split honours (policy group or drop, or conflicts drop). With
    `report` and `keep` the split does not read them, so re-tuning the detector reruns no split
    and no training."""
    dedup = config["dedup"]
    uses_pairs = dedup["enabled"] and (dedup["policy"] in ("group", "drop") or dedup["conflicts"] == "drop")
    return ["results/dedup/pairs.csv"] if uses_pairs else []


def audit_marks_for_split(wildcards):
    """Per-shard mark tables, read by the split only when `audit.marks: drop` removes marked frames."""
    uses_marks = config["audit"]["enabled"] and config["audit"]["marks"] == "drop"
    return expand("results/audit/shard_{shard}/marks.csv", shard=SHARDS) if uses_marks else []


def denoise_source(wildcards, base="results"):
    """The frames denoise reads: the ingested ones, or with `audit.marks: inpaint` the same frames
    with their burned-in marks inpainted (under ``base``: the run's, or a predict batch's)."""
    if config["audit"]["enabled"] and config["audit"]["marks"] == "inpaint":
        return f"{base}/audit/shard_{wildcards.shard}/inpainted.npy"
    return f"{base}/ingest/shard_{wildcards.shard}/frames.npy"


def dedup_crossing(wildcards):
    return ["results/dedup/crossing.csv"] if config["dedup"]["enabled"] else []


def audit_summary_inputs(wildcards):
    """The near-duplicate findings the audit summary reports, when the near-duplicate stage runs."""
    if not config["dedup"]["enabled"]:
        return {}
    return {"pairs": "results/dedup/pairs.csv", "conflicts": "results/dedup/conflicts.csv",
            "policies": "results/dedup/policies.csv"}


# Keys of `audit` per consumer, so that choosing a policy or retuning the probe reruns no detector.
AUDIT_DETECTOR_KEYS = ("bright", "rare", "contrast", "max_width", "max_size", "colour")
AUDIT_PROBE_KEYS = ("probe_folds", "probe_boot", "probe_warn", "seed")


def audit_settings(keys):
    return {key: config["audit"][key] for key in keys}


def denoise_settings():
    method = config["denoise"]["method"]
    return {"method": method, method: config["denoise"].get(method, {})}


def sheet_has_masks():
    return bool((samples()["mask"] != "").any())


def segmentation_runs():
    """The U-Net stage runs when it is enabled and at least one item has a lesion mask."""
    if "segmentation_runs" not in _validated:
        # Read the sheet first, even with segmentation off: later input functions rely on the
        # demo checkpoint having been resolved here.
        has_masks = sheet_has_masks()
        _validated["segmentation_runs"] = bool(config["segment"]["enabled"] and has_masks)
        if config["segment"]["enabled"] and not has_masks:
            warn("segmentation skipped: no item of the sample sheet has a lesion mask; classifiers use full frames")
    return _validated["segmentation_runs"]


def classifier_inputs():
    """The configured classifier inputs; roi and both become full when segmentation is skipped."""
    inputs = config["train"]["inputs"]
    if not segmentation_runs():
        inputs = ["full" if mode in ("roi", "both") else mode for mode in inputs]
    return list(dict.fromkeys(inputs))


def runs(inputs=None):
    """Every trained (model, input) run as 'model/input', the folder under results/train and evaluate."""
    return [f"{model}/{mode}" for model in MODELS for mode in inputs or classifier_inputs()]


def compare_inputs(wildcards):
    files = {"predictions_test": "predictions_test.csv", "predictions_cv": "predictions_cv.csv",
             "thresholds": "thresholds.json", "headlines": "headline.csv"}
    return {name: expand("results/evaluate/{run}/{file}", run=runs(), file=[file]) for name, file in files.items()}


def evaluate_settings():
    return {key: value for key, value in config["evaluate"].items() if key != "readers"}


def sheet_digest_of_run(wildcards):
    return sheet_digest(samples())


def segmenter_for(fold):
    return f"fold_{fold}" if per_fold_segmenters(config["segment"]["per_fold"], config["train"]["inputs"]) else "all"


def segmenters():
    return sorted({segmenter_for(fold) for fold in FOLDS})


def classifier_arrays(wildcards):
    """Per-shard arrays of the classifier's input: denoised frames and/or the U-Net's ROI crops."""
    arrays = {}
    if wildcards.input in ("full", "both"):
        arrays["full"] = expand("results/denoise/shard_{shard}/frames.npy", shard=SHARDS)
    if wildcards.input in ("roi", "both"):
        arrays["roi"] = expand("results/segment/{segmenter}/shard_{shard}/rois.npy",
                               segmenter=segmenter_for(wildcards.fold), shard=SHARDS)
    return arrays


def cam_arrays(wildcards):
    """The frames a run's classifier saw, in its own geometry (CAMs are drawn over these)."""
    return classifier_arrays(wildcards)[wildcards.input]


def cam_lesions(wildcards):
    """Lesion masks in the run's geometry (frame or ROI): the segmentation stage's when it ran;
    else the sheet's own masks (full frames only), when there are any; else none."""
    if not segmentation_runs():
        return expand("results/ingest/shard_{shard}/masks.npy", shard=SHARDS) if sheet_has_masks() else []
    kind = "lesions" if wildcards.input == "full" else "roi_lesions"
    return expand("results/segment/{segmenter}/shard_{shard}/{kind}.npy",
                  segmenter=segmenter_for(wildcards.fold), shard=SHARDS, kind=[kind])


def explained_runs():
    """Runs whose input is one image geometry: a CAM over two stacked views (both) maps onto
    neither, so those runs are not rendered."""
    single_view = [mode for mode in classifier_inputs() if mode != "both"]
    explained = runs(single_view) if single_view else []
    if len(explained) < len(runs()) and "cam_skip_logged" not in _validated:
        _validated["cam_skip_logged"] = True
        warn("Grad-CAM skips runs with input 'both': its two channels (frame, ROI) differ in "
             "geometry, so a heatmap cannot be drawn over either")
    return explained


def segment_settings():
    segment = config["segment"]
    depth, channels = segment.get("encoder_depth", 5), segment.get("decoder_channels")
    if channels is not None and len(channels) != depth:
        raise WorkflowError(f"segment.decoder_channels needs one entry per encoder stage (encoder_depth {depth}), "
                            f"got {channels}")
    return {key: value for key, value in segment.items() if key not in ("enabled", "per_fold", "gpu", "threads")}


# Keys of `train` that do not change what one (model, fold) job computes: excluded from its
# params so that, e.g., adding a model does not rerun the others.
NOT_TRAINING_PARAMS = {"models", "inputs", "weights", "init_from", "gpu", "threads"}


def train_settings(wildcards):
    settings = {key: value for key, value in config["train"].items() if key not in NOT_TRAINING_PARAMS}
    settings["weights"] = config["train"].get("weights", {}).get(wildcards.model)
    settings["init_from"] = config["train"].get("init_from", {}).get(wildcards.model)
    settings["input"] = wildcards.input
    return settings


def init_checkpoint(wildcards):
    """Chained transfer: the other run's checkpoint is an input, so a newer one retrains this."""
    path = config["train"].get("init_from", {}).get(wildcards.model)
    return [path] if path else []


def final_targets(wildcards):
    """Everything a run produces but the manifest. An input function: which stages run depends on
    the sheet (lesion masks or not), and the demo's sheet only exists after its checkpoint."""
    targets = [
        "results/frames.csv",
        *expand("results/denoise/shard_{shard}/frames.npy", shard=SHARDS),
        "results/splits.json",
        *expand("results/evaluate/{run}/headline.csv", run=runs()),
    ]
    if segmentation_runs():
        targets += expand("results/segment/{segmenter}/summary.csv", segmenter=segmenters())
    if len(runs()) > 1:
        targets += [f"results/evaluate/{name}" for name in ("compare.csv", "models.csv", "compare_roc.png", "compare_auc.png")]
    if config["cam"]["enabled"]:
        targets += expand("results/cam/{run}/quality.csv", run=explained_runs())
    if config["evaluate"]["readers"]:
        targets += expand("results/evaluate/{run}/readers_vs_model.csv", run=runs())
    if config["audit"]["enabled"]:
        targets += ["results/audit/summary.csv"]
    # The tables as HTML pages and the landing page, for snakemake --report (report.smk).
    targets += report_pages(wildcards)
    return targets


def all_targets(wildcards):
    return final_targets(wildcards) + ["results/manifest.json"]


# --- report: the tables' HTML pages and the landing page (rules in report.smk) ---------------------


def landing_inputs(wildcards):
    """What the landing page reads: every run's headline and operating point, the near-duplicate
    tables when the check runs, and the audit summary (the plan comes as the rule's params)."""
    inputs = {
        "headlines": expand("results/evaluate/{run}/headline.csv", run=runs()),
        "thresholds": expand("results/evaluate/{run}/thresholds.json", run=runs()),
    }
    if config["dedup"]["enabled"]:
        inputs["pairs"] = "results/dedup/pairs.csv"
        inputs["crossing"] = "results/dedup/crossing.csv"
    if config["audit"]["enabled"]:
        inputs["audit"] = "results/audit/summary.csv"
    return inputs


def landing_warnings(wildcards):
    """The warnings snakemake itself logged while building this run's DAG (presets, skipped stages)."""
    segmentation_runs(), explained_runs()  # make sure their warnings, if any, have been recorded
    return list(RUN_WARNINGS)


def report_pages(wildcards):
    """Every HTML page of tables (rules in report.smk), for final_targets."""
    pages = ["results/frames.html", "results/split_report.html", "results/landing.html",
             *expand("results/evaluate/{run}/{page}.html", run=runs(), page=["headline", "folds", "leakage"])]
    if config["dedup"]["enabled"]:
        pages.append("results/dedup/pairs.html")
    if segmentation_runs():
        pages += expand("results/segment/{segmenter}/summary.html", segmenter=segmenters())
    if len(runs()) > 1:
        pages += ["results/evaluate/models.html", "results/evaluate/compare.html"]
    if config["cam"]["enabled"]:
        pages += expand("results/cam/{run}/quality.html", run=explained_runs())
    if config["evaluate"]["readers"]:
        pages += expand("results/evaluate/{run}/{page}.html", run=runs(), page=["readers", "readers_vs_model"])
    return pages


# --- predict: the trained run applied to new cases ------------------------------------------------
PREDICT_SHARD = "00"  # new cases are one shard: batches are small, and results/predict keeps them apart


def predict_batch():
    """The folder under results/predict: predict.name, else the sheet's file name."""
    settings = config.get("predict") or {}
    if not settings.get("samples"):
        raise WorkflowError("target predict needs a sheet of new cases: --config 'predict={samples: new_cases.csv}' "
                            "(columns patient_id, item_id, path; label optional)")
    name = settings.get("name") or Path(settings["samples"]).stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise WorkflowError(f"predict: {name!r} cannot name a results folder; set predict.name (letters, digits, . _ -)")
    return name


def predict_sheet():
    """The new cases' sheet, validated like the training sheet but with labels optional."""
    if "predict_sheet" not in _validated:
        path = config["predict"]["samples"]
        try:
            checked = validate_sheet(read_sheet(path), labels=config["labels"], sheet_name=Path(path).name,
                                     probe_cache=ProbeCache(config["probe_cache"]), require_labels=False,
                                     several_labels_per_patient=config["evaluate"].get("unit", "auto") != "patient")
        except SheetError as error:
            raise WorkflowError(f"predict sheet {path} is invalid:\n{error}")
        _validated["predict_sheet"] = relative_paths(checked, Path.cwd(), inside_only=True)
    return _validated["predict_sheet"]


def predict_media(wildcards):
    rows = predict_sheet()
    return {"media": rows["path"].tolist(), "masks": [p for field in rows["mask"] if field for p in field.split(";")]}


def predict_records(wildcards):
    return predict_sheet()[SHEET_COLUMNS].sort_values("item_id").to_dict("records")


def predict_checkpoints(wildcards):
    return expand("results/train/{model}/{input}/fold_{fold}/best.pt", model=wildcards.model, input=wildcards.input,
                  fold=FOLDS)


def predict_arrays(wildcards):
    """Per fold, the new cases' frames as that fold's classifier reads them (as classifier_arrays)."""
    base = f"results/predict/{wildcards.batch}"
    arrays = {}
    if wildcards.input in ("full", "both"):
        arrays["full"] = [f"{base}/denoise/shard_{PREDICT_SHARD}/frames.npy"] * len(FOLDS)
    if wildcards.input in ("roi", "both"):
        arrays["roi"] = [f"{base}/segment/{segmenter_for(fold)}/shard_{PREDICT_SHARD}/rois.npy" for fold in FOLDS]
    return arrays


def predict_run_files(wildcards):
    """Every run's predictions for the report (an input function: the runs depend on the sheet)."""
    files = {key: expand("results/predict/{batch}/{run}/{name}", batch=wildcards.batch, run=runs(), name=[name])
             for key, name in (("per_item", "items.csv"), ("per_patient", "patients.csv"), ("overlays", "overlays.png"))}
    return {**files, "thresholds": expand("results/evaluate/{run}/thresholds.json", run=runs())}


def predict_targets(wildcards):
    return [f"results/predict/{predict_batch()}/report.html"]
