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
        conflicts=report(
            "results/dedup/conflicts.csv",
            caption="../report/dedup_conflicts.rst",
            category="2. Split",
            subcategory="near-duplicates",
        ),
        conflicts_figure=report(
            "results/dedup/conflicts.png",
            caption="../report/dedup_conflicts_figure.rst",
            category="2. Split",
            subcategory="near-duplicates",
        ),
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
