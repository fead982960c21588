"""Rule cam_report: a run's explanation-quality table (folds and fold ensemble) and overlays."""

import numpy as np

from sonoflow.cam import CamSettings, cam_report, read_quality
from sonoflow.dataset import read_frame_table
from sonoflow.evaluate import read_headline_predictions
from sonoflow.figures import cam_overlay_figures
from sonoflow.io import for_people, save_csv
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = CamSettings.from_config(snakemake.params.settings)
    part, (predictions,) = read_headline_predictions([snakemake.input.ensemble_test], [snakemake.input.ensemble_cv])
    mode = snakemake.wildcards.input
    folds = [dict(np.load(path)) for path in snakemake.input.cams]
    fold_quality = [read_quality(path) for path in snakemake.input.quality]
    summary, per_image, overlays = cam_report(folds, fold_quality, predictions, part, snakemake.params.labels, settings,
                                              frames=read_frame_table(snakemake.input.frames))
    cam_overlay_figures(dict(zip(settings.methods, snakemake.output.overlays)), overlays, snakemake.params.labels,
                        f"{snakemake.wildcards.model}, {mode} input")
    save_csv(snakemake.output.summary, for_people(summary))
    save_csv(snakemake.output.per_image, for_people(per_image))
    log.info("\n%s", for_people(summary).to_string(index=False))
