# Each stage's own input functions and params, in the order of the stages (its rules: the .smk file
# of the same name). They sit here, not beside the rules, so that no rule file mixes rules and
# functions (snakemake --lint); the ones several stages share are in common.smk.
import re

from sonoflow.audit import AuditSettings
from sonoflow.cam import CamSettings
from sonoflow.denoise import params as denoise_params
from sonoflow.sheet import sheet_digest
from sonoflow.stage_settings import EvaluateSettings, PretrainSettings, SegmentSettings, TrainSettings


# --- ingest -----------------------------------------------------------------------------------
def shard_media(wildcards):
    """The files one ingest shard reads: a change to any of them reruns that shard only."""
    rows = shard_rows(wildcards.shard)
    masks = [path for field in rows["mask"] if field for path in field.split(";")]
    return {"media": rows["path"].tolist(), "masks": masks}


def shard_records(wildcards):
    """The shard's rows as plain records: params, so an edited row reruns its shard only."""
    return shard_rows(wildcards.shard, SHEET_COLUMNS + PROBED_COLUMNS).to_dict("records")


# --- denoise ----------------------------------------------------------------------------------
def denoise_source(wildcards, base="results"):
    """The frames denoise reads: the ingested ones, or with `audit.marks: inpaint` the same frames
    with their burned-in marks inpainted (under ``base``: the run's, or a predict batch's)."""
    if config["audit"]["enabled"] and config["audit"]["marks"] == "inpaint":
        return f"{base}/audit/shard_{wildcards.shard}/inpainted.npy"
    return f"{base}/ingest/shard_{wildcards.shard}/frames.npy"


# --- audit ------------------------------------------------------------------------------------
def audit_summary_inputs(wildcards):
    """The near-duplicate findings the audit summary reports, when the near-duplicate stage runs."""
    if not config["dedup"]["enabled"]:
        return {}
    return {"pairs": "results/dedup/pairs.csv", "conflicts": "results/dedup/conflicts.csv",
            "policies": "results/dedup/policies.csv"}


# --- split ------------------------------------------------------------------------------------
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


# --- segment (the U-Net) ----------------------------------------------------------------------
# The U-Net's settings, as its rule's params (the keys that change what it learns); a decoder that
# does not fit the encoder stops the run here.
try:
    SEGMENT_PARAMS = SegmentSettings.params(config["segment"])
except ValueError as error:
    raise WorkflowError(str(error)) from None


# --- train ------------------------------------------------------------------------------------
def train_settings(wildcards):
    """One job's settings: adding a model or an input changes no other job's (TrainSettings.params);
    the others rerun only because the plan shares its time budget among all runs (rule plan). With
    pretrain.enabled, a fold's classifier starts from that fold's pretrained backbone."""
    settings = TrainSettings.params(config["train"], wildcards.model, wildcards.input)
    if config["pretrain"]["enabled"] and hasattr(wildcards, "fold"):
        settings["init_from"] = pretrained_encoder(wildcards)
    return settings


def pretrained_encoder(wildcards):
    return f"results/pretrain/{wildcards.model}/{wildcards.input}/fold_{wildcards.fold}/encoder.pt"


def plan_inputs(wildcards):
    """The frames and the split. An input function: which runs are planned depends on the sheet
    (stages()), and snakemake needs an input of the rule to wait for the demo sheet's checkpoint."""
    stages()
    return {"frames": "results/frames.csv", "splits": "results/splits.json"}


def plan_settings(wildcards):
    """Each run's settings that decide how long its training takes (TrainSettings.TIMED): the plan
    times them; a change of any other (the learning rate) does not re-plan. Adding a run re-plans,
    and so retrains the others: they share the time budget."""
    return {f"{model}/{mode}": TrainSettings.timed(train_settings(SimpleNamespace(model=model, input=mode)))
            for model in MODELS for mode in stages().inputs}


def init_checkpoint(wildcards):
    """Chained transfer: the other run's checkpoint (or this fold's pretrained backbone) is an
    input, so a newer one retrains this."""
    if config["pretrain"]["enabled"]:  # a fold's own pretrained backbone (rule pretrain)
        return [pretrained_encoder(wildcards)]
    path = config["train"].get("init_from", {}).get(wildcards.model)
    return [path] if path else []


# --- evaluate ---------------------------------------------------------------------------------
def evaluation_report(path, caption, category="5. Evaluation", subcategory="{model} {input}"):
    """An output under results/evaluate shown in the report, with its caption (workflow/report)."""
    return report(f"results/evaluate/{path}", caption=f"../report/{caption}.rst", category=category,
                  subcategory=subcategory)


def dedup_crossing(wildcards):
    return ["results/dedup/crossing.csv"] if config["dedup"]["enabled"] else []


def attention_tables(wildcards):
    """Each fold's attention weights (rule attend), validation then test, when evaluate.pooling lists attention."""
    if "attention" not in config["evaluate"]["pooling"]:
        return []
    folder = f"results/train/{wildcards.model}/{wildcards.input}"
    return [f"{folder}/fold_{fold}/attention_{part}.csv" for part in ("val", "test") for fold in FOLDS]


def compare_inputs(wildcards):
    files = {"predictions_test": "predictions_test.csv", "predictions_cv": "predictions_cv.csv",
             "thresholds": "thresholds.json", "headlines": "headline.csv"}
    return {name: expand("results/evaluate/{run}/{file}", run=runs(), file=[file]) for name, file in files.items()}


# --- near-duplicates --------------------------------------------------------------------------
def near_duplicates_report(path, caption):
    """An output shown in the report beside the split, with its caption (workflow/report)."""
    return report(path, caption=f"../report/{caption}.rst", category="2. Split", subcategory="near-duplicates")


# --- Grad-CAM ---------------------------------------------------------------------------------
def explained_runs():
    """Runs whose input is one image geometry: a CAM over two stacked views (both) maps onto
    neither, so those runs are not rendered."""
    explained = [f"{model}/{mode}" for model in MODELS for mode in stages().inputs if mode != "both"]
    if len(explained) < len(runs()) and "cam_skip_logged" not in _validated:
        _validated["cam_skip_logged"] = True
        warn("Grad-CAM skips runs with input 'both': its two channels (frame, ROI) differ in "
             "geometry, so a heatmap cannot be drawn over either")
    return explained


def cam_arrays(wildcards):
    """The frames a run's classifier saw, in its own geometry (CAMs are drawn over these)."""
    return classifier_arrays(wildcards)[wildcards.input]


def cam_lesions(wildcards):
    """Lesion masks in the run's geometry (frame or ROI): the segmentation stage's when it ran;
    else the sheet's own masks (full frames only), when there are any; else none."""
    if not stages().segmentation:
        return expand("results/ingest/shard_{shard}/masks.npy", shard=SHARDS) if stages().masks else []
    kind = "lesions" if wildcards.input == "full" else "roi_lesions"
    return expand("results/segment/{segmenter}/shard_{shard}/{kind}.npy",
                  segmenter=segmenter_for(wildcards.fold), shard=SHARDS, kind=[kind])


# --- report pages and the landing page --------------------------------------------------------
def report_pages(wildcards):
    """Every HTML page of tables, for final_targets."""
    pages = ["results/frames.html", "results/split_report.html", "results/landing.html",
             *expand("results/evaluate/{run}/{page}.html", run=runs(), page=["headline", "folds", "leakage"])]
    if config["dedup"]["enabled"]:
        pages.append("results/dedup/pairs.html")
    if stages().segmentation:
        pages += expand("results/segment/{segmenter}/summary.html", segmenter=segmenters())
    if len(runs()) > 1:
        pages += ["results/evaluate/models.html", "results/evaluate/compare.html"]
    if config["cam"]["enabled"]:
        pages += expand("results/cam/{run}/quality.html", run=explained_runs())
    if config["evaluate"]["readers"]:
        pages += expand("results/evaluate/{run}/{page}.html", run=runs(), page=["readers", "readers_vs_model"])
    return pages


def landing_inputs(wildcards):
    """What the landing page reads: every run's headline and operating point, the near-duplicate
    tables when the check runs, the audit summary, and the data plan (the config's comes as params)."""
    inputs = {
        "headlines": expand("results/evaluate/{run}/headline.csv", run=runs()),
        "thresholds": expand("results/evaluate/{run}/thresholds.json", run=runs()),
        "plan": "results/plan.json",
    }
    if config["dedup"]["enabled"]:
        inputs["pairs"] = "results/dedup/pairs.csv"
        inputs["crossing"] = "results/dedup/crossing.csv"
    if config["audit"]["enabled"]:
        inputs["audit"] = "results/audit/summary.csv"
    return inputs


def landing_warnings(wildcards):
    """The warnings snakemake itself logged while building this run's DAG (presets, skipped stages)."""
    stages(), explained_runs()  # make sure their warnings, if any, have been recorded
    return list(RUN_WARNINGS)


def sheet_digest_of_run(wildcards):
    return sheet_digest(samples())


# --- predict: the trained run applied to new cases --------------------------------------------
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
    return predict_sheet()[SHEET_COLUMNS + PROBED_COLUMNS].sort_values("item_id").to_dict("records")


def predict_checkpoints(wildcards):
    return expand("results/train/{model}/{input}/fold_{fold}/best.pt", model=wildcards.model, input=wildcards.input,
                  fold=FOLDS)


def predict_arrays(wildcards):
    """Per fold, the new cases' frames as that fold's classifier reads them (channel_arrays)."""
    return channel_arrays(wildcards.input, FOLDS, [PREDICT_SHARD], f"results/predict/{wildcards.batch}")


def predict_run_files(wildcards):
    """Every run's predictions for the report (an input function: the runs depend on the sheet)."""
    files = {key: expand("results/predict/{batch}/{run}/{name}", batch=wildcards.batch, run=runs(), name=[name])
             for key, name in (("per_item", "items.csv"), ("per_patient", "patients.csv"), ("overlays", "overlays.png"))}
    return {**files, "thresholds": expand("results/evaluate/{run}/thresholds.json", run=runs())}


def predict_targets(wildcards):
    return [f"results/predict/{predict_batch()}/report.html"]
