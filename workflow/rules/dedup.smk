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
        pairs=near_duplicates_report("results/dedup/pairs.csv", "dedup_pairs"),
        groups="results/dedup/groups.csv",
        conflicts=near_duplicates_report("results/dedup/conflicts.csv", "dedup_conflicts"),
        conflicts_figure=near_duplicates_report("results/dedup/conflicts.png", "dedup_conflicts_figure"),
        figure=near_duplicates_report("results/dedup/pairs.png", "dedup_figure"),
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
        frames="results/frames.csv",
    output:
        crossing="results/dedup/crossing.csv",
        policies="results/dedup/policies.csv",
    params:
        labels=config["labels"],
        split=config["split"],
        conflicts=config["dedup"]["conflicts"],
    benchmark:
        "results/benchmarks/dedup/crossing.tsv"
    log:
        "results/logs/dedup/crossing.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/dedup_crossing.py"
