"""Rule denoise: speckle filter over one shard's frames."""

from sonoflow.denoise import denoise_frames
from sonoflow.io import load_npy, save_npy
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = snakemake.params.settings
    frames = load_npy(snakemake.input.frames)
    save_npy(snakemake.output.frames, denoise_frames(frames, settings["method"], settings))
    log.info("%s on %d frames", settings["method"], len(frames))
