"""Settings that are planned from the run rather than fixed: each ``auto`` value resolved in one
place, without importing torch (the workflow resolves them while it parses)."""

from __future__ import annotations

from typing import Sequence


def per_fold_segmenters(per_fold: bool | str, inputs: Sequence[str]) -> bool:
    """``segment.per_fold: auto``: one U-Net per fold when a classifier reads its ROI crops (a
    U-Net that saw a fold's validation patients would flatter that fold's figures); otherwise one
    U-Net on every non-test patient, which then only draws lesions for the explanations and Dice."""
    if per_fold == "auto":
        return any(mode in ("roi", "both") for mode in inputs)
    return bool(per_fold)


AUTO = "auto"
# (section, key) -> (value on the built-in demo, value on the user's data).
# Real ultrasound needs the lesion's margins, calcifications and posterior features resolved:
# frames are kept at 256 px, the classifier sees 224 px (its ImageNet weights' native size), the
# U-Net 256 px with smp's full decoder and an ImageNet encoder that installs offline (a plain smp
# U-Net so configured reached Dice 0.755 on a held-out breast set where sonoflow's former default,
# resnet18 from scratch at 128 px, reached 0.614: issue 13). The demo's synthetic lesions are large
# and smooth: 128 px frames and a light U-Net show them and keep the demo fast (held-out Dice
# 0.812 at 96 px, README "Measured").
PLANNED = {
    ("ingest", "size"): (128, 256),
    ("segment", "input_size"): (96, 256),
    ("segment", "encoder"): ("resnet18", "tu-efficientnet_lite0"),
    ("segment", "weights"): (None, "imagenet"),
    ("segment", "decoder_channels"): ([128, 64, 32, 16, 8], [256, 128, 64, 32, 16]),
    ("segment", "epochs"): (20, 30),
    ("segment", "steps_per_epoch"): (6, 10),
    ("segment", "patience"): (4, 8),
    ("segment", "min_delta"): (0.01, 0.0),
    ("train", "input_size"): (128, 224),
    # Fine-tuning pretrained weights on a few hundred real images: with AdamW at 1e-3 the validation
    # loss was lowest after epoch 1 in 3 of 5 DDTI folds (after epochs 3 and 4 in the others) and
    # pooled patient-level AUC was 0.650 (README "Measured"); 3e-4 is the usual fine-tuning rate,
    # with a longer schedule and one more epoch of patience. The demo's synthetic classes are
    # learnt at 1e-3 in 12 epochs.
    ("train", "lr"): (1e-3, 3e-4),
    ("train", "epochs"): (12, 15),
    ("train", "patience"): (4, 5),
}
WHY = {
    True: "the built-in synthetic demo: large smooth lesions; small sizes keep it fast",
    False: "your data: lesion margins and echogenic foci need 224-256 px; an ImageNet U-Net encoder that installs "
           "offline; a fine-tuning learning rate",
}


def apply_plan(config: dict, demo: bool) -> list[dict]:
    """Resolve every ``auto`` value of PLANNED in ``config``, in place (the demo's or the data's
    values), and return the plan: one record per planned key (key, value, planned, why). Explicit
    values are kept as given and listed as such, so the plan shows what a run used and why."""
    plan = []
    for (section, key), (on_demo, on_data) in PLANNED.items():
        value = config[section].get(key, AUTO)
        if value == AUTO:
            config[section][key] = on_demo if demo else on_data
            plan.append({"key": f"{section}.{key}", "value": config[section][key], "planned": True, "why": WHY[demo]})
        else:
            plan.append({"key": f"{section}.{key}", "value": value, "planned": False, "why": "set in the config"})
    return plan
