rule split:
    input:
        frames="results/frames.csv",
        pairs=dedup_pairs,
        marks=audit_marks_for_split,
    output:
        splits="results/splits.json",
        report=report(
            "results/split_report.csv",
            caption="../report/split_report.rst",
            category="2. Split",
        ),
    params:
        settings=config["split"],
        labels=config["labels"],
        dedup_policy=config["dedup"]["policy"],
        dedup_conflicts=config["dedup"]["conflicts"],
    benchmark:
        "results/benchmarks/split.tsv"
    log:
        "results/logs/split.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/split.py"
