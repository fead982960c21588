rule cam:
    input:
        checkpoint="results/train/{model}/{input}/fold_{fold}/best.pt",
        fold_test="results/train/{model}/{input}/fold_{fold}/predictions_test.csv",
        fold_val="results/train/{model}/{input}/fold_{fold}/predictions_val.csv",
        ensemble_test="results/evaluate/{model}/{input}/predictions_test.csv",
        ensemble_cv="results/evaluate/{model}/{input}/predictions_cv.csv",
        arrays=cam_arrays,
        lesions=cam_lesions,
    output:
        quality="results/cam/{model}/{input}/fold_{fold}/quality.csv",
        cams="results/cam/{model}/{input}/fold_{fold}/cams.npz",
    params:
        settings=CamSettings.params(config["cam"]),
    threads: config["cam"]["threads"]
    benchmark:
        "results/benchmarks/cam/{model}/{input}/fold_{fold}.tsv"
    log:
        "results/logs/cam/{model}/{input}/fold_{fold}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/cam.py"


rule cam_report:
    input:
        cams=expand("results/cam/{{model}}/{{input}}/fold_{fold}/cams.npz", fold=FOLDS),
        quality=expand("results/cam/{{model}}/{{input}}/fold_{fold}/quality.csv", fold=FOLDS),
        ensemble_test="results/evaluate/{model}/{input}/predictions_test.csv",
        ensemble_cv="results/evaluate/{model}/{input}/predictions_cv.csv",
        # Which lesion outlines are ground truth (has_mask) and which the U-Net's.
        frames="results/frames.csv",
    output:
        summary=report(
            "results/cam/{model}/{input}/quality.csv",
            caption="../report/cam_quality.rst",
            category="6. Explanations",
            subcategory="{model} {input}",
        ),
        per_image="results/cam/{model}/{input}/quality_per_image.csv",
        overlays=[
            report(
                f"results/cam/{{model}}/{{input}}/overlays_{method}.png",
                caption="../report/cam_overlays.rst",
                category="6. Explanations",
                subcategory="{model} {input}",
            )
            for method in config["cam"]["methods"]
        ],
    params:
        settings=CamSettings.params(config["cam"]),
        labels=config["labels"],
    benchmark:
        "results/benchmarks/cam/{model}/{input}/report.tsv"
    log:
        "results/logs/cam/{model}/{input}/report.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/cam_report.py"
