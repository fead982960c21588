# Tables people read, as HTML pages beside their CSVs (snakemake --report shows HTML inline and
# only links CSVs), and the landing page with the headline of every run. Rendering:
# sonoflow.report (write_pages, write_landing); script: scripts/table_pages.py.


rule ingest_page:
    input:
        frames="results/frames.csv",
    output:
        frames=report("results/frames.html", caption="../report/frames_table.rst", category="1. Ingest"),
    log:
        "results/logs/report/ingest_page.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule split_page:
    input:
        split_report="results/split_report.csv",
    output:
        split_report=report("results/split_report.html", caption="../report/split_report.rst", category="2. Split"),
    log:
        "results/logs/report/split_page.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule dedup_page:
    input:
        pairs="results/dedup/pairs.csv",
    output:
        pairs=report(
            "results/dedup/pairs.html",
            caption="../report/dedup_pairs.rst",
            category="2. Split",
            subcategory="near-duplicates",
        ),
    log:
        "results/logs/report/dedup_page.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule segment_page:
    input:
        segment_summary="results/segment/{segmenter}/summary.csv",
    output:
        segment_summary=report(
            "results/segment/{segmenter}/summary.html",
            caption="../report/segment_summary.rst",
            category="3. Segmentation",
            subcategory="{segmenter}",
        ),
    log:
        "results/logs/report/segment_page_{segmenter}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule evaluate_pages:
    input:
        headline="results/evaluate/{model}/{input}/headline.csv",
        thresholds="results/evaluate/{model}/{input}/thresholds.json",
        folds="results/evaluate/{model}/{input}/folds.csv",
        leakage="results/evaluate/{model}/{input}/leakage.csv",
    output:
        headline=report(
            "results/evaluate/{model}/{input}/headline.html",
            caption="../report/eval_headline.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        folds=report(
            "results/evaluate/{model}/{input}/folds.html",
            caption="../report/eval_folds.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        leakage=report(
            "results/evaluate/{model}/{input}/leakage.html",
            caption="../report/eval_leakage.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
    params:
        title="{model}, {input} input",
    log:
        "results/logs/report/evaluate_pages/{model}/{input}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule compare_pages:
    input:
        models="results/evaluate/models.csv",
        compare="results/evaluate/compare.csv",
    output:
        models=report(
            "results/evaluate/models.html",
            caption="../report/eval_models.rst",
            category="5. Evaluation",
            subcategory="model comparison",
        ),
        compare=report(
            "results/evaluate/compare.html",
            caption="../report/eval_compare.rst",
            category="5. Evaluation",
            subcategory="model comparison",
        ),
    log:
        "results/logs/report/compare_pages.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule readers_pages:
    input:
        readers="results/evaluate/{model}/{input}/readers.csv",
        readers_vs_model="results/evaluate/{model}/{input}/readers_vs_model.csv",
    output:
        readers=report(
            "results/evaluate/{model}/{input}/readers.html",
            caption="../report/eval_readers.rst",
            category="5. Evaluation",
            subcategory="readers",
        ),
        readers_vs_model=report(
            "results/evaluate/{model}/{input}/readers_vs_model.html",
            caption="../report/eval_readers_vs_model.rst",
            category="5. Evaluation",
            subcategory="readers",
        ),
    params:
        title="{model}, {input} input",
    log:
        "results/logs/report/readers_pages/{model}/{input}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule cam_page:
    input:
        cam_quality="results/cam/{model}/{input}/quality.csv",
    output:
        cam_quality=report(
            "results/cam/{model}/{input}/quality.html",
            caption="../report/cam_quality.rst",
            category="6. Explanations",
            subcategory="{model} {input}",
        ),
    params:
        title="{model}, {input} input",
    log:
        "results/logs/report/cam_page/{model}/{input}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/table_pages.py"


rule landing:
    input:
        unpack(landing_inputs),
    output:
        # Shown on the report's first page too (workflow/report/workflow.rst includes it).
        landing=report("results/landing.html", caption="../report/landing.rst", category="0. Run"),
    params:
        runs=lambda wildcards: runs(),
        source=lambda wildcards: sheet_source(),
        demo=lambda wildcards: uses_demo(),
        warnings=landing_warnings,
        dedup_policy=config["dedup"]["policy"],
        plan=PLAN,
        log_folder="results/logs",
    log:
        "results/logs/report/landing.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/landing.py"


rule manifest:
    input:
        arrays=expand("results/ingest/shard_{shard}/{kind}.npy", shard=SHARDS, kind=["frames", "masks"]),
        plan="results/plan.json",
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
