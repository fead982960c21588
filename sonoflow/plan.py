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
# (section, key) -> (value on the built-in demo, value on the user's data). Real ultrasound needs
# the lesion's margins, calcifications and posterior features resolved: frames are kept at 256 px,
# the classifier sees 224 px (its ImageNet weights' native size) and the U-Net 256 px (a multiple
# of 32). The demo's synthetic lesions are large and smooth: 128 px shows them and keeps it fast.
PLANNED_SIZES = {
    ("ingest", "size"): (128, 256),
    ("segment", "input_size"): (128, 256),
    ("train", "input_size"): (128, 224),
}
WHY = {
    True: "the built-in synthetic demo: large smooth lesions, 128 px keeps it fast",
    False: "real ultrasound: frames at 256 px, the classifier at 224 px (its ImageNet size), the U-Net at 256 px, "
           "so that lesion margins and echogenic foci stay visible",
}


def apply_plan(config: dict, demo: bool) -> list[dict]:
    """Resolve every ``auto`` size of ``config`` in place (the demo's or the data's values) and
    return the plan: one record per planned key (key, value, why). Explicit values are kept as
    given and listed as such, so the plan shows what a run used and where it came from."""
    plan = []
    for (section, key), (on_demo, on_data) in PLANNED_SIZES.items():
        value = config[section].get(key, AUTO)
        if value == AUTO:
            config[section][key] = on_demo if demo else on_data
            plan.append({"key": f"{section}.{key}", "value": config[section][key], "planned": True, "why": WHY[demo]})
        else:
            plan.append({"key": f"{section}.{key}", "value": value, "planned": False, "why": "set in the config"})
    return plan
