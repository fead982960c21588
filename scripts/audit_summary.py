"""Rule audit_summary: the audit's findings in one table and page (near-duplicates, label
conflicts, marks per class, shortcut probe, and what each policy would change), and marked frames drawn."""

import pandas as pd

from sonoflow.audit import AuditSettings, audit_summary, marks_per_class, read_marks
from sonoflow.dataset import FrameStore
from sonoflow.dedup import read_pairs
from sonoflow.figures import marks_figure
from sonoflow.io import for_people, save_csv, save_text
from sonoflow.logs import log_to
from sonoflow.report import audit_page

with log_to(snakemake.log[0]) as log:
    settings = AuditSettings.from_config(snakemake.params.settings)
    dedup = snakemake.params.dedup
    marks = read_marks(snakemake.input.marks)
    has_dedup = "pairs" in snakemake.input.keys()
    summary = audit_summary(
        marks, pd.read_csv(snakemake.input.shortcuts, keep_default_na=False, na_values=[""]),
        pairs=read_pairs(snakemake.input.pairs) if has_dedup else None,
        conflicts=read_pairs(snakemake.input.conflicts) if has_dedup else None,
        policies=pd.read_csv(snakemake.input.policies) if has_dedup else None,
        marks_policy=settings.marks, dedup_policy=dedup["policy"], conflicts_policy=dedup.get("conflicts"))
    save_csv(snakemake.output.marks, for_people(marks_per_class(marks)))
    marks_figure(snakemake.output.figure, marks, FrameStore.from_paths(snakemake.input.arrays))
    save_text(snakemake.output.page, audit_page(summary))
    save_csv(snakemake.output.summary, for_people(summary))
    log.info("\n%s", summary.to_string(index=False))
