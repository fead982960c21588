rule evaluate:
    input:
        predictions_val=expand("results/train/{{model}}/{{input}}/fold_{fold}/predictions_val.csv", fold=FOLDS),
        predictions_test=expand("results/train/{{model}}/{{input}}/fold_{fold}/predictions_test.csv", fold=FOLDS),
        histories=expand("results/train/{{model}}/{{input}}/fold_{fold}/history.csv", fold=FOLDS),
        crossing=dedup_crossing,
        attention=attention_tables,
    output:
        folds=evaluation_report("{model}/{input}/folds.csv", "eval_folds"),
        headline=evaluation_report("{model}/{input}/headline.csv", "eval_headline"),
        thresholds="results/evaluate/{model}/{input}/thresholds.json",
        calibration_table=evaluation_report("{model}/{input}/calibration.csv", "eval_calibration_table"),
        pooling=evaluation_report("{model}/{input}/pooling.csv", "eval_pooling"),
        leakage=evaluation_report("{model}/{input}/leakage.csv", "eval_leakage"),
        predictions_cv="results/evaluate/{model}/{input}/predictions_cv.csv",
        predictions_test="results/evaluate/{model}/{input}/predictions_test.csv",
        roc=evaluation_report("{model}/{input}/roc.png", "eval_roc"),
        pr=evaluation_report("{model}/{input}/pr.png", "eval_pr"),
        confusion=evaluation_report("{model}/{input}/confusion.png", "eval_confusion"),
        calibration=evaluation_report("{model}/{input}/calibration.png", "eval_calibration"),
        training=evaluation_report("{model}/{input}/training.png", "eval_training", category="4. Training"),
    params:
        labels=config["labels"],
        settings=EvaluateSettings.params(config["evaluate"]),
    benchmark:
        "results/benchmarks/evaluate/{model}/{input}.tsv"
    log:
        "results/logs/evaluate/{model}/{input}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/evaluate.py"


rule compare:
    input:
        unpack(compare_inputs),
    output:
        table=evaluation_report("compare.csv", "eval_compare", subcategory="model comparison"),
        models=evaluation_report("models.csv", "eval_models", subcategory="model comparison"),
        roc=evaluation_report("compare_roc.png", "eval_compare_roc", subcategory="model comparison"),
        intervals=evaluation_report("compare_auc.png", "eval_compare_auc", subcategory="model comparison"),
    params:
        runs=lambda wildcards: runs(),
        labels=config["labels"],
        settings=EvaluateSettings.params(config["evaluate"]),
    benchmark:
        "results/benchmarks/evaluate/compare.tsv"
    log:
        "results/logs/evaluate/compare.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/compare.py"


rule readers:
    input:
        readers=config["evaluate"]["readers"] or [],
        predictions_test="results/evaluate/{model}/{input}/predictions_test.csv",
        predictions_cv="results/evaluate/{model}/{input}/predictions_cv.csv",
        thresholds="results/evaluate/{model}/{input}/thresholds.json",
    output:
        metrics=evaluation_report("{model}/{input}/readers.csv", "eval_readers", subcategory="readers"),
        comparison=evaluation_report("{model}/{input}/readers_vs_model.csv", "eval_readers_vs_model", subcategory="readers"),
    params:
        labels=config["labels"],
        settings=EvaluateSettings.params(config["evaluate"]),
    benchmark:
        "results/benchmarks/evaluate/{model}/{input}_readers.tsv"
    log:
        "results/logs/evaluate/{model}/{input}_readers.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/readers.py"
