rule ingest:
    input:
        unpack(shard_media),
    output:
        frames="results/ingest/shard_{shard}/frames.npy",
        masks="results/ingest/shard_{shard}/masks.npy",
        table="results/ingest/shard_{shard}/frames.csv",
        previews=report(
            directory("results/ingest/shard_{shard}/previews"),
            # previews/<label>/<patient>/<item>_<k>.png (sonoflow.frames.preview_folder): shown by
            # class, then patient, not by hash shard.
            patterns=["{label}/{patient}/{name}.png"],
            caption="../report/ingest_previews.rst",
            category="1. Ingest",
            subcategory="previews: {label}",
            labels={"patient": "{patient}", "preview": "{name}"},
        ),
    params:
        rows=shard_records,
        settings=config["ingest"],
    benchmark:
        "results/benchmarks/ingest/shard_{shard}.tsv"
    log:
        "results/logs/ingest/shard_{shard}.log",
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/ingest.py"


rule frames_table:
    input:
        tables=expand("results/ingest/shard_{shard}/frames.csv", shard=SHARDS),
    output:
        table=report(
            "results/frames.csv",
            caption="../report/frames_table.rst",
            category="1. Ingest",
        ),
    benchmark:
        "results/benchmarks/frames_table.tsv"
    log:
        "results/logs/frames_table.log",
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/frames_table.py"
