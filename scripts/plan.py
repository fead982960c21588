"""Rule plan: the data's fingerprint and the plan that follows from it (results/plan.json): the
classifier's epochs within plan.max_hours, timed on this machine for each trained run, and
whether its augmentation rotates, shifts and zooms (train.geometric: auto)."""

import torch

from sonoflow.dataset import INPUT_CHANNELS, read_frame_table
from sonoflow.io import save_json
from sonoflow.logs import log_to
from sonoflow.loop import pick_device
from sonoflow.plan import AUTO, fingerprint, plan_epochs, plan_geometric
from sonoflow.split import read_splits
from sonoflow.train import TrainSettings, seconds_per_image

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    facts = fingerprint(read_frame_table(snakemake.input.frames), read_splits(snakemake.input.splits))
    runs = snakemake.params.runs
    planned, max_hours = snakemake.params.epochs_planned, snakemake.params.max_hours
    settings = {run: TrainSettings.from_config(snakemake.params.settings[run]) for run in runs}
    epochs = settings[runs[0]].epochs
    timing = None
    # Timed only where a budget could cut something: planned epochs, on the CPU.
    if planned and max_hours and all(pick_device(s.device).type == "cpu" for s in settings.values()):
        per_run = {run: seconds_per_image(s, len(snakemake.params.labels), in_channels=len(INPUT_CHANNELS[s.input]),
                                          frame_size=snakemake.params.frame_size) for run, s in settings.items()}
        log.info("training seconds per image: %s", ", ".join(f"{run} {value:.3f}" for run, value in per_run.items()))
        timing = sum(per_run.values()) / len(per_run)  # plan_epochs multiplies by the number of runs
    record = plan_epochs(facts, epochs=epochs, planned=planned, runs=len(runs), seconds_per_image=timing,
                         max_hours=max_hours)
    records = [record]
    if snakemake.params.geometric == AUTO:  # a value set in the config is the config's (its plan record says so)
        records.append(plan_geometric(facts))
    for entry in records:
        log.info("plan: %s %s (%s)", entry["key"], entry["value"], entry["why"])
    save_json(snakemake.output.plan, {"fingerprint": facts, "seconds_per_image": timing, "plan": records})
