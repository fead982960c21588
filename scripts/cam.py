"""Rule cam: one fold's CAMs, explanation quality per image, and CAMs of the images shown."""

import numpy as np
import torch

from sonoflow.cam import CamSettings, cam_fold, choose_examples, load_classifier
from sonoflow.dataset import FrameStore, classifier_store
from sonoflow.evaluate import read_headline_predictions
from sonoflow.io import atomic_path, save_csv
from sonoflow.logs import log_to
from sonoflow.metrics import read_predictions

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    settings = CamSettings.from_config(snakemake.params.settings)
    model, checkpoint = load_classifier(snakemake.input.checkpoint, settings.device)
    # The frames CAMs are shown for: the test fold ensemble, else the pooled validation folds.
    part_name, (headline,) = read_headline_predictions([snakemake.input.ensemble_test], [snakemake.input.ensemble_cv])
    # The fold scores the test patients, or (no test set) its own validation patients.
    part = read_predictions(snakemake.input.fold_test if part_name == "test" else snakemake.input.fold_val)
    examples = choose_examples(headline, checkpoint["labels"], settings.per_kind, settings.seed)
    mode = snakemake.wildcards.input
    store = classifier_store(mode, {mode: snakemake.input.arrays})
    lesions = FrameStore.from_paths(snakemake.input.lesions) if snakemake.input.lesions else None
    quality, arrays = cam_fold(model, checkpoint, part, examples, store, lesions, settings)
    save_csv(snakemake.output.quality, quality)
    with atomic_path(snakemake.output.cams, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    log.info("fold %s on %s: %d images scored, %d shown", snakemake.wildcards.fold, part_name,
             quality["item_id"].nunique() if len(quality) else 0, len(arrays["example_keys"]))
