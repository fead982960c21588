"""Rule audit: burned-in marks (calipers, lines, dotted lines, text, colour) on one shard's frames."""

from sonoflow.audit import AuditSettings, audit_frames
from sonoflow.dataset import read_frame_table
from sonoflow.io import load_npy, save_csv, save_npy
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = AuditSettings.from_config(snakemake.params.settings)
    marks, masks = audit_frames(load_npy(snakemake.input.frames), read_frame_table(snakemake.input.table), settings)
    save_npy(snakemake.output.masks, masks)
    save_csv(snakemake.output.marks, marks)  # written last: a complete table means a complete mask array
    log.info("shard %s: %d of %d frames carry marks (%s)", snakemake.wildcards.shard, int(marks["marked"].sum()),
             len(marks), ", ".join(f"{kind} {int((marks[f'n_{kind}'] > 0).sum())}"
                                   for kind in ("cross", "line", "dots", "text", "colour")))
