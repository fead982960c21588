"""Rule train: one classifier for one (model, input, fold); resumes from its saved state after a kill."""

from pathlib import Path

import torch

from sonoflow.dataset import INPUT_CHANNELS, classifier_store, read_frame_table
from sonoflow.io import read_json_object
from sonoflow.logs import log_to
from sonoflow.plan import planned_training
from sonoflow.split import read_splits
from sonoflow.train import FoldOutputs, TrainSettings, run_fold

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    mode = snakemake.wildcards.input
    # The plan (results/plan.json) may have cut planned epochs to fit plan.max_hours.
    plan = planned_training(read_json_object(snakemake.input.plan, "a plan file"))
    settings = TrainSettings.from_config({**snakemake.params.settings, **plan}, model=snakemake.wildcards.model)
    resume_state = Path(snakemake.params.resume_state)
    run_fold(
        read_frame_table(snakemake.input.frames),
        read_splits(snakemake.input.splits),
        int(snakemake.wildcards.fold),
        classifier_store(mode, {name: snakemake.input[name] for name in INPUT_CHANNELS[mode]}),
        settings,
        snakemake.params.labels,
        FoldOutputs(checkpoint=snakemake.output.checkpoint, history=snakemake.output.history,
                    predictions_val=snakemake.output.predictions_val, predictions_test=snakemake.output.predictions_test),
        resume_path=resume_state,
    )
    resume_state.unlink(missing_ok=True)  # finished: the next run of this job starts afresh
