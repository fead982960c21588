rule plan:
    input:
        unpack(plan_inputs),
    output:
        plan="results/plan.json",
    params:
        runs=lambda wildcards: runs(),
        settings=plan_settings,
        labels=config["labels"],
        epochs_planned=planned("train.epochs"),
        geometric=config["train"]["geometric"],
        max_hours=config["plan"]["max_hours"],
        frame_size=config["ingest"]["size"],
    threads: config["train"]["threads"]
    benchmark:
        "results/benchmarks/plan.tsv"
    log:
        "results/logs/plan.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/plan.py"


rule train:
    input:
        unpack(classifier_arrays),
        frames="results/frames.csv",
        splits="results/splits.json",
        plan="results/plan.json",
        init_from=init_checkpoint,
    output:
        checkpoint="results/train/{model}/{input}/fold_{fold}/best.pt",
        history=report(
            "results/train/{model}/{input}/fold_{fold}/history.csv",
            caption="../report/history.rst",
            category="4. Training",
            subcategory="{model} {input}",
        ),
        predictions_val="results/train/{model}/{input}/fold_{fold}/predictions_val.csv",
        predictions_test="results/train/{model}/{input}/fold_{fold}/predictions_test.csv",
    params:
        settings=train_settings,
        labels=config["labels"],
        # Not an output: it must survive a killed job so that the rerun resumes from it.
        resume_state="results/train/{model}/{input}/fold_{fold}.resume.pt",
    threads: config["train"]["threads"]
    resources:
        gpu=1 if config["train"]["gpu"] else 0,
    benchmark:
        "results/benchmarks/train/{model}/{input}/fold_{fold}.tsv"
    log:
        "results/logs/train/{model}/{input}/fold_{fold}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"


rule attend:
    input:
        unpack(classifier_arrays),
        checkpoint="results/train/{model}/{input}/fold_{fold}/best.pt",
        frames="results/frames.csv",
        splits="results/splits.json",
    output:
        val="results/train/{model}/{input}/fold_{fold}/attention_val.csv",
        test="results/train/{model}/{input}/fold_{fold}/attention_test.csv",
        history="results/train/{model}/{input}/fold_{fold}/attention_history.csv",
        figure=report(
            "results/train/{model}/{input}/fold_{fold}/attention.png",
            caption="../report/attention.rst",
            category="5. Evaluation",
            subcategory="{model} {input}",
        ),
    params:
        settings=config["evaluate"]["attention"],
        unit=config["evaluate"]["unit"],
        device=config["train"]["device"],
    threads: config["train"]["threads"]
    benchmark:
        "results/benchmarks/attend/{model}/{input}/fold_{fold}.tsv"
    log:
        "results/logs/attend/{model}/{input}/fold_{fold}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/attend.py"


rule pretrain:
    input:
        unpack(classifier_arrays),
        frames="results/frames.csv",
        splits="results/splits.json",
    output:
        encoder="results/pretrain/{model}/{input}/fold_{fold}/encoder.pt",
        history=report(
            "results/pretrain/{model}/{input}/fold_{fold}/history.csv",
            caption="../report/pretrain_history.rst",
            category="4. Training",
            subcategory="{model} {input}",
        ),
        patients="results/pretrain/{model}/{input}/fold_{fold}/patients.json",
    params:
        settings=PretrainSettings.params(config["pretrain"]),
        labels=config["labels"],
        input_size=config["train"]["input_size"],
        weights=lambda wildcards: config["train"]["weights"].get(wildcards.model),
        resume_state="results/pretrain/{model}/{input}/fold_{fold}.resume.pt",
    threads: config["train"]["threads"]
    resources:
        gpu=1 if config["pretrain"]["gpu"] else 0,
    benchmark:
        "results/benchmarks/pretrain/{model}/{input}/fold_{fold}.tsv"
    log:
        "results/logs/pretrain/{model}/{input}/fold_{fold}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/pretrain.py"
