checkpoint demo_data:
    output:
        sheet=DEMO_SHEET,
        media=directory("results/demo/items"),
    params:
        settings=config.get("demo", {}),
    benchmark:
        "results/benchmarks/demo_data.tsv"
    log:
        "results/logs/demo_data.log",
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/make_demo.py"
