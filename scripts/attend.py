"""Rule attend: one fold's attention pooling, trained on its training patients' units; the weights
of its validation and test frames, its history and the frames its decisions leaned on."""

import torch

from sonoflow.attention import attend_fold
from sonoflow.cam import load_classifier
from sonoflow.dataset import INPUT_CHANNELS, classifier_store, read_frame_table
from sonoflow.evaluate import AttentionSettings
from sonoflow.figures import attention_figure
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.split import read_splits

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    mode, fold = snakemake.wildcards.input, int(snakemake.wildcards.fold)
    model, checkpoint = load_classifier(snakemake.input.checkpoint, snakemake.params.device, "train.device")
    result = attend_fold(model, checkpoint, read_frame_table(snakemake.input.frames), read_splits(snakemake.input.splits),
                         fold, classifier_store(mode, {name: snakemake.input[name] for name in INPUT_CHANNELS[mode]}),
                         AttentionSettings.from_config(snakemake.params.settings), snakemake.params.unit)
    save_csv(snakemake.output.val, result.weights["val"])
    save_csv(snakemake.output.test, result.weights["test"])
    save_csv(snakemake.output.history, result.history)
    kept = (f"kept training step {result.kept_step}" if result.kept_step else
            "no training step beat the plain mean on the validation units: uniform weights kept")
    attention_figure(snakemake.output.figure, result.examples,
                     f"{snakemake.wildcards.model}, {mode} input, fold {fold}: validation {result.unit}s and the attention "
                     f"weight of each frame (heaviest first); the unit's probability is the weighted mean; {kept}")
