"""Rule demo_data: generate the built-in synthetic ultrasound data set."""

from pathlib import Path

from sonoflow.demo import make_demo
from sonoflow.logs import log_to

with log_to(snakemake.log[0]) as log:
    settings = dict(snakemake.params.settings)
    sheet = make_demo(
        Path(snakemake.output.sheet).parent,
        n_patients_per_class=settings.get("patients_per_class", 6),
        images_per_patient=settings.get("images_per_patient", 2),
        clips_per_patient=settings.get("clips_per_patient", 1),
        frames_per_clip=settings.get("frames_per_clip", 12),
        seed=settings.get("seed", 0),
    )
    log.info("demo: %d items of %d patients", len(sheet), sheet["patient_id"].nunique())
