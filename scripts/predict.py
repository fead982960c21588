"""Rule predict_classify: one trained run's fold ensemble on the new cases, with Grad-CAM overlays."""

import torch

from sonoflow.dataset import INPUT_CHANNELS, classifier_store, combine_frame_tables
from sonoflow.io import save_csv
from sonoflow.logs import log_to
from sonoflow.evaluate import read_decision
from sonoflow.figures import prediction_overlay_figure
from sonoflow.predict import cam_blends, mark_seen_patients, patients_seen, predict_run
from sonoflow.split import read_splits

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    mode, labels = snakemake.wildcards.input, snakemake.params.labels
    frames = combine_frame_tables([snakemake.input.frames])
    # Fold k reads its own arrays (ROI crops of its own segmenter, when there is one per fold).
    stores = [classifier_store(mode, {name: [snakemake.input[name][fold]] for name in INPUT_CHANNELS[mode]})
              for fold in range(len(snakemake.input.checkpoints))]
    decision = read_decision(snakemake.input.thresholds)  # the run's thresholds, temperature and pooling
    prediction, shown, images, cams, ensemble = predict_run(
        frames, snakemake.input.checkpoints, stores, labels, decision["thresholds"], decision["positive"],
        overlays=snakemake.params.overlays, cam_method=snakemake.params.cam_method, device=snakemake.params.device,
        temperature=decision["temperature"], pooling=decision["pooling"], k=decision["topk"])
    log.info("probabilities calibrated with temperature %.4f (%s), pooled by %s", decision["temperature"],
             decision["calibration"], decision["pooling"])
    seen = patients_seen(read_splits(snakemake.input.splits))
    run = f"{snakemake.wildcards.model}, {mode} input"
    prediction_overlay_figure(snakemake.output.overlays, cam_blends(images, cams), shown,
                              f"{run}: {snakemake.params.cam_method} of the predicted class "
                              f"({'fold ensemble' if ensemble else 'fold 0: folds saw different ROI crops'})")
    save_csv(snakemake.output.frames, prediction.frames)
    save_csv(snakemake.output.per_item, mark_seen_patients(prediction.items, seen))
    save_csv(snakemake.output.per_patient, mark_seen_patients(prediction.patients, seen))
    overlap = sorted(set(prediction.patients["patient_id"]) & seen)
    if overlap:
        log.warning("%d patient id(s) of the new cases were training or validation patients of this run (e.g. %s): "
                    "their probabilities are optimistic", len(overlap), overlap[:5])
    log.info("%s: %d frames, %d items, %d patients\n%s", run, len(frames), len(prediction.items),
             len(prediction.patients), prediction.patients.to_string(index=False))
