# The trained run applied to new cases (no labels needed):
#   snakemake --cores all predict --config 'predict={samples: new_cases.csv}'
# The new frames go through the same ingest, denoise and U-Net as the training data; the run's
# trained models are inputs, so nothing is retrained unless the run itself is stale.


rule predict:
    input:
        predict_targets,


# The new cases' frames are made by the training data's own rules, on paths of their own.
use rule ingest as predict_ingest with:
    input:
        unpack(predict_media),
    output:
        frames="results/predict/{batch}/ingest/shard_{shard}/frames.npy",
        masks="results/predict/{batch}/ingest/shard_{shard}/masks.npy",
        table="results/predict/{batch}/ingest/shard_{shard}/frames.csv",
        previews=directory("results/predict/{batch}/ingest/shard_{shard}/previews"),
    params:
        rows=predict_records,
        settings=config["ingest"],
    benchmark:
        "results/benchmarks/predict/{batch}/ingest_{shard}.tsv"
    log:
        "results/logs/predict/{batch}/ingest_{shard}.log",


# With `audit.marks: inpaint` the new frames lose their burned-in marks as the training frames did.
use rule audit as predict_audit with:
    input:
        frames="results/predict/{batch}/ingest/shard_{shard}/frames.npy",
        table="results/predict/{batch}/ingest/shard_{shard}/frames.csv",
    output:
        marks="results/predict/{batch}/audit/shard_{shard}/marks.csv",
        masks="results/predict/{batch}/audit/shard_{shard}/marks.npy",
    log:
        "results/logs/predict/{batch}/audit_{shard}.log",


use rule audit_inpaint as predict_audit_inpaint with:
    input:
        frames="results/predict/{batch}/ingest/shard_{shard}/frames.npy",
        masks="results/predict/{batch}/audit/shard_{shard}/marks.npy",
    output:
        frames="results/predict/{batch}/audit/shard_{shard}/inpainted.npy",
    log:
        "results/logs/predict/{batch}/inpaint_{shard}.log",


use rule denoise as predict_denoise with:
    input:
        frames=lambda wildcards: denoise_source(wildcards, f"results/predict/{wildcards.batch}"),
    output:
        frames="results/predict/{batch}/denoise/shard_{shard}/frames.npy",
    benchmark:
        "results/benchmarks/predict/{batch}/denoise_{shard}.tsv"
    log:
        "results/logs/predict/{batch}/denoise_{shard}.log",


use rule segment as predict_segment with:
    input:
        model="results/segment/{segmenter}/unet.pt",
        frames="results/predict/{batch}/denoise/shard_{shard}/frames.npy",
        table="results/predict/{batch}/ingest/shard_{shard}/frames.csv",
        truth="results/predict/{batch}/ingest/shard_{shard}/masks.npy",
    output:
        masks="results/predict/{batch}/segment/{segmenter}/shard_{shard}/masks.npy",
        rois="results/predict/{batch}/segment/{segmenter}/shard_{shard}/rois.npy",
        lesions="results/predict/{batch}/segment/{segmenter}/shard_{shard}/lesions.npy",
        roi_lesions="results/predict/{batch}/segment/{segmenter}/shard_{shard}/roi_lesions.npy",
        table="results/predict/{batch}/segment/{segmenter}/shard_{shard}/rois.csv",
    benchmark:
        "results/benchmarks/predict/{batch}/segment_{segmenter}_{shard}.tsv"
    log:
        "results/logs/predict/{batch}/segment_{segmenter}_{shard}.log",


rule predict_classify:
    input:
        unpack(predict_arrays),
        checkpoints=predict_checkpoints,
        frames=f"results/predict/{{batch}}/ingest/shard_{PREDICT_SHARD}/frames.csv",
        thresholds="results/evaluate/{model}/{input}/thresholds.json",
        splits="results/splits.json",
    output:
        frames="results/predict/{batch}/{model}/{input}/frames.csv",
        per_item="results/predict/{batch}/{model}/{input}/items.csv",
        per_patient="results/predict/{batch}/{model}/{input}/patients.csv",
        overlays="results/predict/{batch}/{model}/{input}/overlays.png",
    params:
        labels=config["labels"],
        overlays=config["predict"].get("overlays", 24),
        cam_method=config["predict"].get("cam_method", "gradcam"),
        device=config["train"]["device"],
    threads: config["train"]["threads"]
    benchmark:
        "results/benchmarks/predict/{batch}/{model}/{input}.tsv"
    log:
        "results/logs/predict/{batch}/{model}/{input}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/predict.py"


rule predict_report:
    input:
        unpack(predict_run_files),
    output:
        report="results/predict/{batch}/report.html",
    params:
        runs=lambda wildcards: runs(),
        labels=config["labels"],
        sheet=lambda wildcards: config["predict"]["samples"],
    benchmark:
        "results/benchmarks/predict/{batch}/report.tsv"
    log:
        "results/logs/predict/{batch}/report.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/predict_report.py"
