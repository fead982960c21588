"""Rule audit_inpaint: one shard's frames with their burned-in marks inpainted (audit.marks: inpaint)."""

from sonoflow.audit import inpaint_marks
from sonoflow.io import load_npy, save_npy
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    masks = load_npy(snakemake.input.masks)
    save_npy(snakemake.output.frames, inpaint_marks(load_npy(snakemake.input.frames), masks, snakemake.params.radius))
    log.info("shard %s: %d frames inpainted", snakemake.wildcards.shard, int(masks.reshape(len(masks), -1).any(1).sum()))
