rule train:
    input:
        frames="results/frames.csv",
        splits="results/splits.json",
        arrays=expand("results/denoise/shard_{shard}/frames.npy", shard=SHARDS),
        init_from=init_checkpoint,
    output:
        checkpoint="results/train/{model}/fold_{fold}/best.pt",
        history=report(
            "results/train/{model}/fold_{fold}/history.csv",
            caption="../report/history.rst",
            category="3. Training",
            subcategory="{model}",
        ),
        predictions_val="results/train/{model}/fold_{fold}/predictions_val.csv",
        predictions_test="results/train/{model}/fold_{fold}/predictions_test.csv",
    params:
        settings=train_settings,
        labels=config["labels"],
        # Not an output: it must survive a killed job so that the rerun resumes from it.
        resume_state="results/train/{model}/fold_{fold}.resume.pt",
    threads: config["train"]["threads"]
    resources:
        gpu=1 if config["train"]["gpu"] else 0,
    log:
        "results/logs/train/{model}/fold_{fold}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"


rule fold_summary:
    input:
        predictions=expand("results/train/{{model}}/fold_{fold}/predictions_val.csv", fold=FOLDS),
        test_predictions=expand("results/train/{{model}}/fold_{fold}/predictions_test.csv", fold=FOLDS),
    output:
        summary=report(
            "results/train/{model}/folds.csv",
            caption="../report/folds.rst",
            category="3. Training",
            subcategory="{model}",
        ),
    params:
        labels=config["labels"],
    log:
        "results/logs/train/{model}/fold_summary.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/fold_summary.py"
