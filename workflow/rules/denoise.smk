rule denoise:
    input:
        frames=denoise_source,
    output:
        frames="results/denoise/shard_{shard}/frames.npy",
    params:
        settings=denoise_params(config["denoise"]),
    benchmark:
        "results/benchmarks/denoise/shard_{shard}.tsv"
    log:
        "results/logs/denoise/shard_{shard}.log",
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/denoise.py"
