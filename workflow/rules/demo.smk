checkpoint demo_data:
    output:
        sheet=DEMO_SHEET,
        media=directory("results/demo/items"),
    params:
        settings=config.get("demo", {}),
    log:
        "results/logs/demo_data.log",
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/make_demo.py"
