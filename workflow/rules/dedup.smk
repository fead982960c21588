rule dedup_embed:
    input:
        frames="results/ingest/shard_{shard}/frames.npy",
    output:
        embeddings="results/dedup/shard_{shard}/embeddings.npy",
    benchmark:
        "results/benchmarks/dedup/shard_{shard}.tsv"
    log:
        "results/logs/dedup/shard_{shard}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/dedup_embed.py"


rule dedup:
    input:
        frames="results/frames.csv",
        embeddings=expand("results/dedup/shard_{shard}/embeddings.npy", shard=SHARDS),
        arrays=expand("results/ingest/shard_{shard}/frames.npy", shard=SHARDS),
    output:
        pairs=report(
            "results/dedup/pairs.csv",
            caption="../report/dedup_pairs.rst",
            category="2. Split",
            subcategory="near-duplicates",
        ),
        groups="results/dedup/groups.csv",
        figure=report(
            "results/dedup/pairs.png",
            caption="../report/dedup_figure.rst",
            category="2. Split",
            subcategory="near-duplicates",
        ),
    params:
        settings=config["dedup"],
    benchmark:
        "results/benchmarks/dedup/dedup.tsv"
    log:
        "results/logs/dedup/dedup.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/dedup.py"


rule dedup_crossing:
    input:
        pairs="results/dedup/pairs.csv",
        splits="results/splits.json",
    output:
        crossing="results/dedup/crossing.csv",
    benchmark:
        "results/benchmarks/dedup/crossing.tsv"
    log:
        "results/logs/dedup/crossing.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/dedup_crossing.py"
