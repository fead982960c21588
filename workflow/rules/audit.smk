# Data audit (before any model trains): burned-in marks per shard, the shortcut probe, and one
# summary with the near-duplicate findings. Only audit.marks inpaint/drop change training.


rule audit:
    input:
        frames="results/ingest/shard_{shard}/frames.npy",
        table="results/ingest/shard_{shard}/frames.csv",
    output:
        marks="results/audit/shard_{shard}/marks.csv",
        masks="results/audit/shard_{shard}/marks.npy",
    params:
        settings=AuditSettings.params(config["audit"], AuditSettings.DETECTOR_KEYS),
    log:
        "results/logs/audit/shard_{shard}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/audit.py"


rule audit_inpaint:
    input:
        frames="results/ingest/shard_{shard}/frames.npy",
        masks="results/audit/shard_{shard}/marks.npy",
    output:
        frames="results/audit/shard_{shard}/inpainted.npy",
    params:
        radius=config["audit"]["inpaint_radius"],
    log:
        "results/logs/audit/inpaint_{shard}.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/audit_inpaint.py"


rule shortcuts:
    input:
        frames="results/frames.csv",
        marks=expand("results/audit/shard_{shard}/marks.csv", shard=SHARDS),
        arrays=expand("results/ingest/shard_{shard}/frames.npy", shard=SHARDS),
        lesions=expand("results/ingest/shard_{shard}/masks.npy", shard=SHARDS),
    output:
        shortcuts=report(
            "results/audit/shortcuts.csv",
            caption="../report/audit_shortcuts.rst",
            category="Audit",
        ),
    params:
        settings=AuditSettings.params(config["audit"], AuditSettings.PROBE_KEYS),
        labels=config["labels"],
    log:
        "results/logs/audit/shortcuts.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/shortcuts.py"


rule audit_summary:
    input:
        unpack(audit_summary_inputs),
        marks=expand("results/audit/shard_{shard}/marks.csv", shard=SHARDS),
        arrays=expand("results/ingest/shard_{shard}/frames.npy", shard=SHARDS),
        shortcuts="results/audit/shortcuts.csv",
    output:
        summary=report(
            "results/audit/summary.csv",
            caption="../report/audit_summary.rst",
            category="Audit",
        ),
        page=report(
            "results/audit/summary.html",
            caption="../report/audit_summary.rst",
            category="Audit",
        ),
        marks=report(
            "results/audit/marks_per_class.csv",
            caption="../report/audit_marks.rst",
            category="Audit",
        ),
        figure=report(
            "results/audit/marks.png",
            caption="../report/audit_marks_figure.rst",
            category="Audit",
        ),
    params:
        settings=config["audit"],
        dedup=config["dedup"],
    log:
        "results/logs/audit/summary.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/audit_summary.py"
