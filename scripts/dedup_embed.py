"""Rule dedup_embed: the near-duplicate embedding of every frame of one shard."""

from sonoflow.dedup import frame_embeddings
from sonoflow.io import load_npy, save_npy
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    embeddings = frame_embeddings(load_npy(snakemake.input.frames))
    save_npy(snakemake.output.embeddings, embeddings)
    log.info("shard %s: %d frames", snakemake.wildcards.shard, len(embeddings))
