"""Rules *_page(s): tables people read as HTML pages for the report, beside their CSVs."""

from sonoflow.logs import log_to
from sonoflow.report import write_pages

with log_to(snakemake.log[0]):
    write_pages(dict(snakemake.output.items()), dict(snakemake.input.items()), snakemake.params.get("title", ""))
