"""Settings that are planned from the run rather than fixed: each ``auto`` value resolved in one
place, without importing torch (the workflow resolves them while it parses)."""

from __future__ import annotations

from typing import Mapping, Sequence


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
    # The classifier's schedule: the demo's synthetic classes are learnt in 12 epochs; real data gets
    # 15 and one more epoch of patience (the learning rate, 1e-3, is the same for both: on BrEaST
    # 3e-4 learnt less in 25 epochs, README "Measured"; the time budget may cut planned epochs).
    ("train", "epochs"): (12, 15),
    ("train", "patience"): (4, 5),
    # The demo's folds have 110-120 training frames: batches of 32 gave 3-4 optimiser steps an epoch
    # and test accuracy 0.829; batches of 16 gave 0.971 in less CPU time (README "Measured"). On
    # real data smaller batches gained nothing (DDTI 16: 0.682 against 0.696 pooled AUC; BrEaST 8:
    # 0.766 / 0.843 against 0.741 / 0.859 pooled / test): 32 stays.
    ("train", "batch_size"): (16, 32),
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


# --- The data plan: once the split exists, from what the run knows about its data ----------------
# Written by rule plan to results/plan.json and read by every training job. Planned here: the
# classifier's epochs, cut to fit `plan.max_hours` when the config left them `auto`; a value the
# config sets is never changed (the plan then only estimates its time).
CLASSIFIER_SHARE = 0.7  # of plan.max_hours for training the classifiers; the rest: U-Net, evaluation, Grad-CAM
MIN_EPOCHS = 5  # the budget never cuts a classifier's training below this many epochs
VALIDATION_COST = 1 / 3  # a validation image costs this share of a training image (no backward pass)


def fingerprint(frames, splits) -> dict:
    """What the run's data is, for the plan and the report: patients, items and frames (per
    class), the native frame size, frames per item, lesion masks, and each fold's training and
    validation frames. ``frames``: results/frames.csv as read (the usable frames: the split's
    exclusions are left out here); ``splits``: results/splits.json as read."""
    from sonoflow.split import usable_frames

    usable = usable_frames(frames, splits)
    per_item = usable.groupby("item_id").size()
    folds = []
    for fold in splits["folds"]:
        train, val = set(fold["train"]), set(fold["val"])
        folds.append({"fold": int(fold["fold"]), "train_frames": int(usable["patient_id"].isin(train).sum()),
                      "val_frames": int(usable["patient_id"].isin(val).sum())})
    size = {}
    if {"source_height", "source_width"} <= set(usable.columns) and len(usable):
        size = {"native_height_median": int(usable["source_height"].median()),
                "native_width_median": int(usable["source_width"].median())}
    return {
        "patients": int(usable["patient_id"].nunique()),
        "items": int(usable["item_id"].nunique()),
        "frames": int(len(usable)),
        "frames_per_class": {str(k): int(v) for k, v in usable.groupby("label").size().items()},
        "patients_per_class": {str(k): int(v) for k, v in usable.groupby("label")["patient_id"].nunique().items()},
        "frames_per_item_median": float(per_item.median()) if len(per_item) else 0.0,
        "frames_per_item_max": int(per_item.max()) if len(per_item) else 0,
        "masked_frames": int(usable["has_mask"].astype(bool).sum()) if "has_mask" in usable else 0,
        "test_patients": len(splits["test"]),
        "test_frames": int(usable["patient_id"].isin(set(splits["test"])).sum()),
        "folds": folds,
        **size,
    }


def duration(hours: float) -> str:
    """A time for people: minutes below two hours, else hours."""
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h"


def classifier_hours(fingerprint: Mapping, runs: int, epochs: int, seconds_per_image: float) -> float:
    """Training time of ``runs`` (model, input) runs of every fold for ``epochs`` epochs, at
    ``seconds_per_image`` per training image (validation images at VALIDATION_COST of that)."""
    per_epoch = sum(fold["train_frames"] + VALIDATION_COST * fold["val_frames"] for fold in fingerprint["folds"])
    return runs * epochs * per_epoch * seconds_per_image / 3600


def plan_epochs(fingerprint: Mapping, *, epochs: int, planned: bool, runs: int, seconds_per_image: float | None,
                max_hours: float) -> dict:
    """The classifier's epochs under the time budget: ``epochs`` (the planned or the configured
    value) when its estimated training time fits CLASSIFIER_SHARE of ``max_hours``; otherwise,
    when the value was planned, the most epochs that fit (never below MIN_EPOCHS), saying what was
    given up. A configured value is kept as set (rule plan does not time it). Without a measured
    ``seconds_per_image`` (a GPU run, or no budget) nothing is cut."""
    record = {"key": "train.epochs", "value": epochs, "planned": planned, "budget_hours": max_hours,
              "estimated_hours": None, "gave_up": ""}
    if not planned or seconds_per_image is None or not max_hours:
        record["why"] = ("set in the config (not timed)" if not planned else "no time budget (plan.max_hours 0)"
                         if not max_hours else "not timed (a GPU run): no budget cut")
        return record
    budget = CLASSIFIER_SHARE * max_hours
    hours = classifier_hours(fingerprint, runs, epochs, seconds_per_image)
    record["estimated_hours"] = round(hours, 3)
    if hours <= budget:
        record["why"] = (f"{epochs} epochs: classifier training about {duration(hours)}, within "
                         f"{CLASSIFIER_SHARE:.0%} of plan.max_hours {max_hours:g}")
        return record
    fitting = max(MIN_EPOCHS, int(budget / classifier_hours(fingerprint, runs, 1, seconds_per_image)))
    fitting = min(fitting, epochs)
    record["value"] = fitting
    record["estimated_hours"] = round(classifier_hours(fingerprint, runs, fitting, seconds_per_image), 3)
    record["gave_up"] = f"{epochs - fitting} of {epochs} epochs"
    record["why"] = (f"cut from {epochs} to {fitting} epochs to fit {CLASSIFIER_SHARE:.0%} of plan.max_hours "
                     f"{max_hours:g} (about {duration(record['estimated_hours'])} at {1 / seconds_per_image:.1f} training "
                     f"images/s measured" + (f"; still over it at the minimum of {MIN_EPOCHS} epochs" if
                                             fitting == MIN_EPOCHS and record["estimated_hours"] > budget else "") + ")")
    return record


def plan_geometric(fingerprint: Mapping) -> dict:
    """``train.geometric: auto``: the classifier's augmentation with rotation, shift and zoom for
    still images, without them when most items are clips (a median above one frame per item). A
    clip's frames already show the anatomy as the probe and the patient move; on top of that, the
    synthetic geometry cost lung POCUS (clips) 0.05 of pooled macro AUC where on DDTI (stills) it
    gained 0.04 (README "Measured"). The flip, intensity and ultrasound's own changes stay either way."""
    per_item = fingerprint["frames_per_item_median"]
    clips = per_item > 1
    why = (f"{per_item:g} frames per item (median): clips, whose frames already move with the probe; rotation, "
           "shift and zoom off" if clips else
           f"{per_item:g} frame per item (median): still images; rotation, shift and zoom on")
    return {"key": "train.geometric", "value": not clips, "planned": True, "why": why}


def planned_training(plan: Mapping) -> dict:
    """The training settings results/plan.json sets (e.g. {"epochs": 9}), for TrainSettings."""
    return {entry["key"].split(".", 1)[1]: entry["value"] for entry in plan.get("plan", [])
            if entry["key"].startswith("train.")}


def describe_data(facts: Mapping) -> dict:
    """The fingerprint as a few short lines for the report: name -> text."""
    lines = {"data": f"{facts['patients']} patients, {facts['items']} items, {facts['frames']} frames "
                     f"({facts['frames_per_item_median']:g} per item, median)",
             "data per class": ", ".join(f"{label} {facts['patients_per_class'][label]} patients / {count} frames"
                                         for label, count in facts["frames_per_class"].items()),
             "data with lesion masks": f"{facts['masked_frames']} frames"}
    if "native_width_median" in facts:
        lines["data native size"] = f"{facts['native_width_median']}x{facts['native_height_median']} px (median)"
    return lines


def merge_plans(config_plan: Sequence[Mapping], data_plan: Mapping | None) -> list[dict]:
    """The run's whole plan: the config's (apply_plan) with the data plan's records (results/plan.json)
    in place of the same keys, and the data's fingerprint first."""
    if not data_plan:
        return [dict(entry) for entry in config_plan]
    later = {entry["key"]: dict(entry) for entry in data_plan.get("plan", [])}
    merged = [{"key": key, "value": text, "planned": False, "why": "results/plan.json"}
              for key, text in describe_data(data_plan["fingerprint"]).items()]
    for entry in config_plan:
        merged.append({**entry, **later.pop(entry["key"])} if entry["key"] in later else dict(entry))
    return merged + list(later.values())
