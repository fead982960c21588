# The sample sheet, loaded and checked once, what it decides, and the input functions several
# stages share. Each stage's own input functions sit beside its rules (workflow/rules/*.smk); the
# config keys each rule passes on are chosen beside their settings class (e.g. TrainSettings.params).
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# (The Snakefile has put the library, next to it, first on sys.path; config.smk has checked the config.)
from sonoflow.config import uses_demo as config_uses_demo
from sonoflow.dataset import INPUT_CHANNELS
from sonoflow.importers import SHEET_COLUMNS, load_layout
from sonoflow.plan import per_fold_segmenters
from sonoflow.sheet import ProbeCache, SheetError, add_shards, read_sheet, relative_paths, validate_sheet
from sonoflow.split import SplitSettings, check_enough_patients


DEMO_SHEET = "results/demo/samples.csv"
# Absolute: the sheet is validated inside input functions, after parsing has moved on.
SAMPLES_SCHEMA = str(Path(workflow.basedir) / "workflow/schemas/samples.schema.yaml")
SHARDS = [f"{index:02d}" for index in range(config["shards"])]
FOLDS = list(range(config["split"]["folds"]))
MODELS = config["train"]["models"]

wildcard_constraints:
    shard=r"\d+",
    fold=r"\d+",
    model="|".join(MODELS),
    input="|".join(INPUT_CHANNELS),
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


# What the sheet check probed from each file's header, passed on so that ingest reads no header twice.
PROBED_COLUMNS = ["n_frames", "fps"]


def shard_rows(shard, columns=SHEET_COLUMNS):
    sheet = samples()
    return sheet.loc[sheet["shard"] == int(shard), columns].sort_values("item_id")


def stages():
    """What the sheet decides: whether the U-Net runs (enabled, and some item has a lesion mask),
    the classifier inputs (roi and both become full without it) and the trained runs.

    Every input function whose answer depends on these goes through here, and this reads the
    sheet first, always: with the demo the sheet only exists after its checkpoint, so each such
    function waits for the checkpoint (snakemake evaluates it again once the sheet exists) rather
    than settling early on an answer from the config alone.
    """
    if "stages" not in _validated:
        has_masks = bool((samples()["mask"] != "").any())
        segmentation = bool(config["segment"]["enabled"] and has_masks)
        if config["segment"]["enabled"] and not has_masks:
            warn("segmentation skipped: no item of the sample sheet has a lesion mask; classifiers use full frames")
        inputs = config["train"]["inputs"]
        if not segmentation:
            inputs = ["full" if mode in ("roi", "both") else mode for mode in inputs]
        inputs = list(dict.fromkeys(inputs))
        _validated["stages"] = SimpleNamespace(masks=has_masks, segmentation=segmentation, inputs=inputs,
                                               runs=[f"{model}/{mode}" for model in MODELS for mode in inputs])
    return _validated["stages"]


def runs():
    """Every trained (model, input) run as 'model/input', the folder under results/train and evaluate."""
    return list(stages().runs)


def segmenter_for(fold):
    return f"fold_{fold}" if per_fold_segmenters(config["segment"]["per_fold"], config["train"]["inputs"]) else "all"


def segmenters():
    return sorted({segmenter_for(fold) for fold in FOLDS})


# Per channel of a classifier input (sonoflow.dataset.INPUT_CHANNELS), the array it reads per shard.
CHANNEL_ARRAYS = {"full": "{base}/denoise/shard_{shard}/frames.npy",
                  "roi": "{base}/segment/{segmenter}/shard_{shard}/rois.npy"}


def channel_arrays(mode, folds, shards, base="results"):
    """The arrays of classifier input ``mode`` per channel: for each fold of ``folds`` (the ROI
    crops are its U-Net's) each shard's; under ``base``, the run's or a predict batch's."""
    return {channel: [CHANNEL_ARRAYS[channel].format(base=base, shard=shard, segmenter=segmenter_for(fold))
                      for fold in folds for shard in shards] for channel in INPUT_CHANNELS[mode]}


def classifier_arrays(wildcards):
    """Per-shard arrays of one fold's classifier input: denoised frames and/or the U-Net's ROI crops."""
    return channel_arrays(wildcards.input, [wildcards.fold], SHARDS)


def final_targets(wildcards):
    """Everything a run produces but the manifest. An input function: which stages run depends on
    the sheet (lesion masks or not), and the demo's sheet only exists after its checkpoint."""
    targets = ["results/frames.csv", *expand("results/denoise/shard_{shard}/frames.npy", shard=SHARDS),
               "results/splits.json", *expand("results/evaluate/{run}/headline.csv", run=runs())]
    if stages().segmentation:
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
    return targets + report_pages(wildcards)


def all_targets(wildcards):
    return final_targets(wildcards) + ["results/manifest.json"]
