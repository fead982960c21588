rule train_segmenter:
    input:
        frames="results/frames.csv",
        splits="results/splits.json",
        arrays=expand("results/denoise/shard_{shard}/frames.npy", shard=SHARDS),
        masks=expand("results/ingest/shard_{shard}/masks.npy", shard=SHARDS),
    output:
        model="results/segment/{segmenter}/unet.pt",
        history=report(
            "results/segment/{segmenter}/history.csv",
            caption="../report/segment_history.rst",
            category="3. Segmentation",
            subcategory="{segmenter}",
        ),
    params:
        settings=SEGMENT_PARAMS,
        # Not an output: it must survive a killed job so that the rerun resumes from it.
        resume_state="results/segment/{segmenter}.resume.pt",
    threads: config["segment"]["threads"]
    resources:
        gpu=1 if config["segment"]["gpu"] else 0,
    benchmark:
        "results/benchmarks/segment/{segmenter}/train.tsv"
    log:
        "results/logs/segment/{segmenter}/train.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train_segmenter.py"


rule segment:
    input:
        model="results/segment/{segmenter}/unet.pt",
        frames="results/denoise/shard_{shard}/frames.npy",
        table="results/ingest/shard_{shard}/frames.csv",
        truth="results/ingest/shard_{shard}/masks.npy",
    output:
        masks="results/segment/{segmenter}/shard_{shard}/masks.npy",
        rois="results/segment/{segmenter}/shard_{shard}/rois.npy",
        # The best lesion mask per frame (ground truth, else U-Net), in frame and ROI geometry.
        lesions="results/segment/{segmenter}/shard_{shard}/lesions.npy",
        roi_lesions="results/segment/{segmenter}/shard_{shard}/roi_lesions.npy",
        table="results/segment/{segmenter}/shard_{shard}/rois.csv",
    threads: config["segment"]["predict_threads"]
    resources:
        gpu=1 if config["segment"]["gpu"] else 0,
    benchmark:
        "results/benchmarks/segment/{segmenter}/shard_{shard}.tsv"
    log:
        "results/logs/segment/{segmenter}/shard_{shard}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/segment.py"


rule segment_metrics:
    input:
        frames="results/frames.csv",
        splits="results/splits.json",
        model="results/segment/{segmenter}/unet.pt",
        images=expand("results/denoise/shard_{shard}/frames.npy", shard=SHARDS),
        truth=expand("results/ingest/shard_{shard}/masks.npy", shard=SHARDS),
        predicted=expand("results/segment/{{segmenter}}/shard_{shard}/masks.npy", shard=SHARDS),
    output:
        table="results/segment/{segmenter}/metrics.csv",
        summary=report(
            "results/segment/{segmenter}/summary.csv",
            caption="../report/segment_summary.rst",
            category="3. Segmentation",
            subcategory="{segmenter}",
        ),
        overlays=report(
            "results/segment/{segmenter}/overlays.png",
            caption="../report/segment_overlays.rst",
            category="3. Segmentation",
            subcategory="{segmenter}",
        ),
    benchmark:
        "results/benchmarks/segment/{segmenter}/metrics.tsv"
    log:
        "results/logs/segment/{segmenter}/metrics.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/segment_metrics.py"
