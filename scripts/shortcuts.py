"""Rule shortcuts: the shortcut probe (label from size, geometry, marks, intensity, the lesion-blanked image)."""

from sonoflow.audit import AuditSettings, read_marks
from sonoflow.dataset import FrameStore, read_frame_table
from sonoflow.io import for_people, save_csv
from sonoflow.logs import log_to
from sonoflow.shortcuts import frame_features, shortcut_probe

with log_to(snakemake.log[0]) as log:
    settings = AuditSettings.from_config(snakemake.params.settings)
    frames = read_frame_table(snakemake.input.frames).sort_values(["shard", "row"]).reset_index(drop=True)
    marks = read_marks(snakemake.input.marks).sort_values(["shard", "row"]).reset_index(drop=True)
    arrays = FrameStore.from_paths(snakemake.input.arrays).gather(frames)
    lesions = FrameStore.from_paths(snakemake.input.lesions).gather(frames)
    groups = frame_features(frames, arrays, lesions, marks)
    table = shortcut_probe(frames, groups, snakemake.params.labels, settings.probe_folds, settings.probe_boot,
                           settings.probe_warn, settings.seed)
    save_csv(snakemake.output.shortcuts, for_people(table))
    log.info("\n%s", table.drop(columns="warning").to_string(index=False))
    for warning in table["warning"]:
        if warning and not warning.startswith("too few"):
            log.warning("shortcut probe: %s", warning)
