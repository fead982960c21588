rule manifest:
    input:
        arrays=expand("results/ingest/shard_{shard}/{kind}.npy", shard=SHARDS, kind=["frames", "masks"]),
        # Written last, so that it describes the run that produced every other result.
        results=final_targets,
    output:
        manifest=report(
            "results/manifest.json",
            caption="../report/manifest.rst",
            category="0. Run",
        ),
    params:
        workflow_dir=workflow.basedir,
        sheet=sheet_digest_of_run,
        # Without `predict`: scoring new cases does not change what produced the run.
        config={key: value for key, value in config.items() if key != "predict"},
        plan=PLAN,
    benchmark:
        "results/benchmarks/manifest.tsv"
    log:
        "results/logs/manifest.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/manifest.py"
