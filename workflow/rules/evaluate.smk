rule evaluate:
    input:
        predictions_val=expand("results/train/{{model}}/{{input}}/fold_{fold}/predictions_val.csv", fold=FOLDS),
        predictions_test=expand("results/train/{{model}}/{{input}}/fold_{fold}/predictions_test.csv", fold=FOLDS),
        histories=expand("results/train/{{model}}/{{input}}/fold_{fold}/history.csv", fold=FOLDS),
        crossing=dedup_crossing,
    output:
        folds=report(
            "results/evaluate/{model}/{input}/folds.csv",
            caption="../report/eval_folds.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        headline=report(
            "results/evaluate/{model}/{input}/headline.csv",
            caption="../report/eval_headline.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        thresholds="results/evaluate/{model}/{input}/thresholds.json",
        calibration_table=report(
            "results/evaluate/{model}/{input}/calibration.csv",
            caption="../report/eval_calibration_table.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        pooling=report(
            "results/evaluate/{model}/{input}/pooling.csv",
            caption="../report/eval_pooling.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        leakage=report(
            "results/evaluate/{model}/{input}/leakage.csv",
            caption="../report/eval_leakage.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        predictions_cv="results/evaluate/{model}/{input}/predictions_cv.csv",
        predictions_test="results/evaluate/{model}/{input}/predictions_test.csv",
        roc=report(
            "results/evaluate/{model}/{input}/roc.png",
            caption="../report/eval_roc.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        pr=report(
            "results/evaluate/{model}/{input}/pr.png",
            caption="../report/eval_pr.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        confusion=report(
            "results/evaluate/{model}/{input}/confusion.png",
            caption="../report/eval_confusion.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        calibration=report(
            "results/evaluate/{model}/{input}/calibration.png",
            caption="../report/eval_calibration.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
        training=report(
            "results/evaluate/{model}/{input}/training.png",
            caption="../report/eval_training.rst",
            category="4. Training",
            subcategory="{model} {input}",
        ),
    params:
        labels=config["labels"],
        settings=evaluate_settings(),
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
        table=report(
            "results/evaluate/compare.csv",
            caption="../report/eval_compare.rst",
            category="5. Evaluation",
            subcategory="model comparison",
        ),
        models=report(
            "results/evaluate/models.csv",
            caption="../report/eval_models.rst",
            category="5. Evaluation",
            subcategory="model comparison",
        ),
        roc=report(
            "results/evaluate/compare_roc.png",
            caption="../report/eval_compare_roc.rst",
            category="5. Evaluation",
            subcategory="model comparison",
        ),
        intervals=report(
            "results/evaluate/compare_auc.png",
            caption="../report/eval_compare_auc.rst",
            category="5. Evaluation",
            subcategory="model comparison",
        ),
    params:
        runs=lambda wildcards: runs(),
        labels=config["labels"],
        settings=evaluate_settings(),
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
        metrics=report(
            "results/evaluate/{model}/{input}/readers.csv",
            caption="../report/eval_readers.rst",
            category="5. Evaluation",
            subcategory="readers",
        ),
        comparison=report(
            "results/evaluate/{model}/{input}/readers_vs_model.csv",
            caption="../report/eval_readers_vs_model.rst",
            category="5. Evaluation",
            subcategory="readers",
        ),
    params:
        labels=config["labels"],
        settings=evaluate_settings(),
    benchmark:
        "results/benchmarks/evaluate/{model}/{input}_readers.tsv"
    log:
        "results/logs/evaluate/{model}/{input}_readers.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/readers.py"
