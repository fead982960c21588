"""Rule pretrain: one fold's self-supervised (SimCLR) pretraining of a classifier's backbone on its
training patients' frames; rule train starts that fold from it. Resumes after a kill."""

import dataclasses

import torch

from sonoflow import checkpoints
from sonoflow.dataset import INPUT_CHANNELS, classifier_store, read_frame_table
from sonoflow.io import save_csv, save_json
from sonoflow.logs import log_to
from sonoflow.pretrain import PretrainSettings, pretrain_fold
from sonoflow.split import read_splits

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    mode, fold, model_name = snakemake.wildcards.input, int(snakemake.wildcards.fold), snakemake.wildcards.model
    settings = PretrainSettings.from_config(snakemake.params.settings)
    store = classifier_store(mode, {name: snakemake.input[name] for name in INPUT_CHANNELS[mode]})
    model, history, patients = pretrain_fold(read_frame_table(snakemake.input.frames), read_splits(snakemake.input.splits),
                                             fold, store, model_name, snakemake.params.labels,
                                             snakemake.params.input_size, snakemake.params.weights, settings,
                                             resume_path=snakemake.params.resume_state)
    save_csv(snakemake.output.history, history)
    save_json(snakemake.output.patients, patients)
    checkpoints.save_classifier(snakemake.output.encoder, model, model_name=model_name, labels=snakemake.params.labels,
                                settings={"pretrain": dataclasses.asdict(settings), "input_size": snakemake.params.input_size},
                                in_channels=getattr(store, "channels", 1),
                                best_epoch=int(history.loc[history["best"], "epoch"].iloc[0]))
