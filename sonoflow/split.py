"""Stage 3, split: held-out test patients and k patient-grouped, stratified folds.

Leakage is prevented structurally: frames reach training and evaluation only through a
``PatientPartition``, which cannot be built with a patient in two parts.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import pandas as pd

from sonoflow.io import FileFormatError, read_json_object, save_json
from sonoflow.settings import Settings


class LeakageError(ValueError):
    """A patient would appear on both sides of a split."""


class SplitError(ValueError):
    """The data cannot be split as configured (e.g. too few patients of a class)."""


@dataclass(frozen=True)
class SplitSettings(Settings):
    SECTION = "split"

    seed: int = 42
    test_fraction: float = 0.2  # share of patients held out; 0 = cross-validation only
    folds: int = 5  # >= 2: StratifiedGroupKFold of the rest; 1: one split with val_fraction
    val_fraction: float = 0.125  # folds == 1 only: share of the non-test patients for validation

    def __post_init__(self) -> None:
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"split test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.folds < 1:
            raise ValueError(f"split folds must be >= 1, got {self.folds}")
        if self.folds == 1 and not 0 < self.val_fraction < 1:
            raise ValueError(f"split val_fraction must be in (0, 1), got {self.val_fraction}")


UNITS = ("auto", "patient", "item")


def several_label_patients(frames: pd.DataFrame) -> list[str]:
    """Patients whose items carry more than one label (e.g. a lesion and normal tissue)."""
    counts = frames.groupby("patient_id")["label"].nunique()
    return sorted(counts.index[counts > 1])


def resolve_unit(frames: pd.DataFrame, unit: str = "auto") -> tuple[str, str]:
    """The unit that is labelled and scored beside the frames, and why: ``patient`` when every
    patient has one label, else ``item`` (``auto``); ``patient`` with a several-label patient is
    an error naming them. The split is grouped by patient either way."""
    if unit not in UNITS:
        raise ValueError(f"evaluate.unit must be one of {', '.join(UNITS)}, not {unit!r}")
    several = several_label_patients(frames)
    if unit == "patient" and several:
        raise SplitError(f"evaluate.unit is patient, but {len(several)} patient(s) have items of several labels: "
                         f"{several[:20]}; set evaluate.unit: item (or auto) to score per item")
    if unit != "auto":
        return unit, f"evaluate.unit: {unit} (set in the configuration)"
    if several:
        return "item", (f"unit item: {len(several)} of {frames['patient_id'].nunique()} patients have items of several "
                        f"labels (e.g. {several[:3]}); the split stays grouped by patient, items are scored")
    return "patient", "unit patient: every patient has one label"


def label_set(values) -> str:
    """A patient's labels as one stratum, e.g. 'benign+normal'."""
    return "+".join(sorted(set(values)))


def patient_table(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: ``label`` (its one label, or its label set joined by '+', the stratum
    of the folds when its items carry several labels), ``labels`` (the set) and the fixed split; a
    patient with two split values is an error."""
    columns = ["patient_id", "label"] + (["split"] if "split" in frames.columns else [])
    per_patient = frames[columns].drop_duplicates()
    if "split" in columns:
        counts = per_patient.groupby("patient_id")["split"].nunique()
        if (counts > 1).any():
            bad = counts[counts > 1].index.tolist()
            raise SplitError(f"patient(s) {bad[:10]} have more than one 'split' value")
    grouped = per_patient.groupby("patient_id", sort=True)
    table = pd.DataFrame({"label": grouped["label"].agg(label_set),
                          "labels": grouped["label"].agg(lambda values: frozenset(values))})
    table["split"] = grouped["split"].first() if "split" in columns else ""
    table.index.name = "patient_id"
    return table


def unit_hash(seed: int, patient_id: str) -> float:
    """A stable number in [0, 1) for a patient: the same on every machine and in every run."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out_patients(patients: pd.DataFrame, settings: SplitSettings, groups: Mapping[str, str] | None = None) -> list[str]:
    """Each patient (or split group of patients, see ``groups``) is decided on its own (hash <
    test_fraction), so adding patients never moves an existing one in or out of the test set,
    unless a new near-duplicate joins its group. A sheet's fixed `test` values take precedence;
    a group with a patient fixed to `train` stays out of the test set as a whole."""
    fixed = patients["split"].fillna("")
    if (fixed == "test").any():
        return sorted(patients.index[fixed == "test"])
    group_of = {pid: (groups or {}).get(pid, pid) for pid in patients.index}
    kept_out = {group_of[pid] for pid in patients.index if fixed[pid] == "train"}
    drawn = [pid for pid, group in group_of.items()
             if group not in kept_out and unit_hash(settings.seed, group) < settings.test_fraction]
    return sorted(drawn)


def check_enough_patients(frames: pd.DataFrame, labels: Sequence[str], settings: SplitSettings) -> None:
    """Fail early (from the sheet alone) when a class has too few patients for the folds."""
    patients = patient_table(frames)
    test = set(held_out_patients(patients, settings))
    drawn_test = settings.test_fraction > 0 and not (patients["split"] == "test").any()
    needed = max(settings.folds, 2)
    for label in labels:
        of_class = patients.index[patients["labels"].map(lambda carried: label in carried)]  # noqa: B023 - called here
        in_test = sum(pid in test for pid in of_class)
        if len(of_class) - in_test < needed:
            scheme = f"{settings.folds} folds need" if settings.folds > 1 else "a train/validation split needs"
            raise SplitError(f"class {label!r} has {len(of_class)} patients, {len(of_class) - in_test} outside the "
                             f"test set; {scheme} at least {needed} there")
        if drawn_test and in_test == 0:
            raise SplitError(f"class {label!r} has no patient in the test set ({len(of_class)} patients, seed "
                             f"{settings.seed}, test_fraction {settings.test_fraction}); change split.seed or add patients")


def make_splits(frames: pd.DataFrame, labels: Sequence[str], settings: SplitSettings,
                groups: Mapping[str, str] | None = None, excluded_items: Sequence[str] = (),
                excluded_frames: Sequence[str] = ()) -> dict:
    """The splits as a JSON-ready dict: test patients and, per fold, train and val patients.

    ``groups`` (patient -> group, e.g. patients linked by near-duplicate images) keeps every
    group on one side of every split; ``excluded_items`` (e.g. dropped duplicates or label
    conflicts) and ``excluded_frames`` (``frame_key`` of frames with burned-in marks) take no part.
    """
    frames = usable_frames(frames, {"excluded_items": excluded_items, "excluded_frames": excluded_frames})
    groups = {pid: group for pid, group in (groups or {}).items() if pid in set(frames["patient_id"])}
    patients = patient_table(frames)
    unknown = sorted(set().union(*patients["labels"]) - set(labels))
    if unknown:
        raise SplitError(f"labels {unknown} are not among the configured labels {list(labels)}")
    check_enough_patients(frames, labels, settings)
    test = held_out_patients(patients, settings, groups)
    # Here, not at the top: the workflow imports this module when Snakemake parses it (SplitSettings).
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

    rest = frames[~frames["patient_id"].isin(test)]
    group_of = rest["patient_id"].map(lambda pid: groups.get(pid, pid))
    folds = []
    if settings.folds == 1:
        # Whole groups are drawn, each with the label of most of its patients.
        per_group = patient_table(rest).assign(group=lambda t: t.index.map(lambda pid: groups.get(pid, pid)))
        labels_of_groups = per_group.groupby("group")["label"].agg(lambda values: values.mode().iloc[0])
        # At least one group of every class in validation (and as many left for training): on a
        # small sheet val_fraction alone can round below the class count.
        n_groups, n_classes = len(labels_of_groups), labels_of_groups.nunique()
        n_val = min(max(n_classes, math.ceil(settings.val_fraction * n_groups)), n_groups - n_classes)
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=settings.seed)
        train_index, val_index = next(splitter.split(labels_of_groups.index, labels_of_groups))
        val_groups = set(labels_of_groups.index[val_index])
        folds.append({"fold": 0, "train": sorted(per_group.index[~per_group["group"].isin(val_groups)]),
                      "val": sorted(per_group.index[per_group["group"].isin(val_groups)])})
    else:
        # Frames as samples, patient groups as groups: folds balance frames, not just patient counts.
        # The stratum of a frame is its patient's label set, so that patients with several labels
        # (benign lesion + normal tissue) spread over the folds like the others.
        strata = rest["patient_id"].map(patients["label"])
        splitter = StratifiedGroupKFold(n_splits=settings.folds, shuffle=True, random_state=settings.seed)
        for fold, (train_index, val_index) in enumerate(splitter.split(rest, strata, group_of)):
            folds.append({"fold": fold, "train": sorted(set(rest["patient_id"].iloc[train_index])),
                          "val": sorted(set(rest["patient_id"].iloc[val_index]))})
    splits = {"seed": settings.seed, "settings": asdict(settings), "labels": list(labels), "test": test, "folds": folds,
              "groups": dict(sorted(groups.items())), "excluded_items": sorted(set(excluded_items)),
              "excluded_frames": sorted(set(excluded_frames))}
    check_splits(splits, patients["labels"].to_dict())
    return splits


def splits_problem(splits) -> str | None:
    """What keeps ``splits`` from being a splits dict as its readers use it (``test``, ``folds``
    each with ``fold``, ``train`` and ``val``; ``groups``, ``excluded_items`` and
    ``excluded_frames`` when present), or None."""
    if not isinstance(splits, Mapping):
        return f"a {type(splits).__name__}, not an object"
    for key in ("test", "folds"):
        if key not in splits:
            return f"no {key!r}"
    if not isinstance(splits["test"], list):
        return "'test' is not a list of patients"
    if not isinstance(splits["folds"], list) or not splits["folds"]:
        return "'folds' is not a non-empty list"
    for k, fold in enumerate(splits["folds"]):
        if not isinstance(fold, Mapping):
            return f"folds[{k}] is not an object"
        missing = [key for key in ("fold", "train", "val") if key not in fold]
        if missing:
            return f"folds[{k}] has no {', '.join(map(repr, missing))}"
        if not isinstance(fold["fold"], int) or isinstance(fold["fold"], bool):
            return f"folds[{k}]['fold'] is not a whole number"
        for part in ("train", "val"):
            if not isinstance(fold[part], list):
                return f"folds[{k}][{part!r}] is not a list of patients"
    if not isinstance(splits.get("groups", {}), Mapping):
        return "'groups' is not an object"
    for key in ("labels", "excluded_items", "excluded_frames"):
        if not isinstance(splits.get(key, []), list):
            return f"{key!r} is not a list"
    return None


def read_splits(path: str | os.PathLike) -> dict:
    """``results/splits.json`` as ``make_splits`` built it; a file that is not one is a
    ``FileFormatError`` naming it."""
    splits = read_json_object(path, "a splits file")
    problem = splits_problem(splits)
    if problem:
        raise FileFormatError(f"{path} is not a splits file: {problem}")
    return splits


def write_splits(path: str | os.PathLike, splits: Mapping) -> None:
    """Write ``splits`` (from ``make_splits``) to ``path``, after checking them again."""
    problem = splits_problem(splits)
    if problem:
        raise ValueError(f"not splits, not written to {path}: {problem}")
    check_splits(splits)
    save_json(path, splits)


def frame_key(frames: pd.DataFrame) -> pd.Series:
    """'shard:row', the address of a frame in the per-shard arrays, as splits.json lists them."""
    return frames["shard"].astype(str) + ":" + frames["row"].astype(str)


def usable_frames(frames: pd.DataFrame, splits: Mapping) -> pd.DataFrame:
    """The frames that take part in the split: excluded items (dropped duplicates, label
    conflicts) and excluded frames (dropped for burned-in marks) are not."""
    usable = ~frames["item_id"].isin(set(splits.get("excluded_items", [])))
    if splits.get("excluded_frames"):
        usable &= ~frame_key(frames).isin(set(splits["excluded_frames"]))
    return frames[usable]


def _carried(labels: str | frozenset) -> set[str]:
    return {labels} if isinstance(labels, str) else set(labels)


def check_splits(splits: Mapping, patient_labels: Mapping[str, str | frozenset] | None = None) -> None:
    """No patient in two parts; every non-test patient validated exactly once (k >= 2); and, when
    labels are given, every class present in every fold's train and val part."""
    test = set(splits["test"])
    validated: list[str] = []
    for fold in splits["folds"]:
        partition = PatientPartition(train=fold["train"], val=fold["val"], test=sorted(test))
        validated += list(partition.val)
        if patient_labels is not None:
            for part in ("train", "val"):
                present = set().union(*(_carried(patient_labels[pid]) for pid in getattr(partition, part)))
                missing = sorted(set(splits["labels"]) - present)
                if missing:
                    raise SplitError(f"fold {fold['fold']} {part} has no patient of class(es) {missing}: "
                                     f"too few patients of those classes for {len(splits['folds'])} folds")
    if len(splits["folds"]) > 1:
        everyone = set().union(*(set(f["train"]) | set(f["val"]) for f in splits["folds"]))
        if sorted(validated) != sorted(everyone):
            raise SplitError("every non-test patient must be in exactly one validation fold")
    members: dict[str, set[str]] = {}
    for pid, group in splits.get("groups", {}).items():
        members.setdefault(group, set()).add(pid)
    for group, pids in members.items():
        for fold in splits["folds"]:
            sides = {side for side, part in (("test", test), ("train", set(fold["train"])), ("val", set(fold["val"])))
                     for pid in pids if pid in part}
            if len(sides) > 1:
                raise LeakageError(f"split group {group} (patients {sorted(pids)}) is on sides {sorted(sides)} "
                                   f"of fold {fold['fold']}")


@dataclass(frozen=True)
class PatientPartition:
    """Disjoint patient sets; construction fails if any patient is in two of them."""

    train: frozenset[str]
    val: frozenset[str]
    test: frozenset[str] = frozenset()

    def __init__(self, train: Sequence[str], val: Sequence[str], test: Sequence[str] = ()):
        parts = {"train": frozenset(map(str, train)), "val": frozenset(map(str, val)), "test": frozenset(map(str, test))}
        names = list(parts)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                shared = parts[first] & parts[second]
                if shared:
                    raise LeakageError(f"patient(s) {sorted(shared)[:10]} are in both {first} and {second}")
        for name, patients in parts.items():
            object.__setattr__(self, name, patients)

    def part(self, name: str) -> frozenset[str]:
        if name not in ("train", "val", "test"):
            raise KeyError(f"no part {name!r}; parts are train, val, test")
        return getattr(self, name)


def partition_for_fold(splits: Mapping, fold: int) -> PatientPartition:
    matching = [f for f in splits["folds"] if int(f["fold"]) == int(fold)]
    if not matching:
        raise KeyError(f"no fold {fold} in splits (folds: {[f['fold'] for f in splits['folds']]})")
    return PatientPartition(train=matching[0]["train"], val=matching[0]["val"], test=splits["test"])


def select_frames(frames: pd.DataFrame, partition: PatientPartition, part: str) -> pd.DataFrame:
    """The frames of one part, original index kept. A frame whose patient is in no part is an
    error: the split is stale, and silently dropping such frames would hide it."""
    known = partition.train | partition.val | partition.test
    unknown = sorted(set(frames["patient_id"]) - known)
    if unknown:
        raise LeakageError(f"frames of patient(s) {unknown[:10]} are in no part of the split; rerun the split")
    return frames[frames["patient_id"].isin(partition.part(part))]


def frames_for_parts(frames: pd.DataFrame, **parts: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Frames for ad-hoc patient lists (e.g. a reader study); overlapping lists are refused."""
    partition = PatientPartition(**{name: parts.get(name, ()) for name in ("train", "val", "test")})
    return {name: frames[frames["patient_id"].isin(partition.part(name))] for name in parts}


def split_report(frames: pd.DataFrame, splits: Mapping) -> pd.DataFrame:
    """Patients, items and frames per class in each part, for people to check the split."""
    rows = []

    def count(part_name: str, fold: str, patients: Sequence[str]) -> None:
        part = frames[frames["patient_id"].isin(set(patients))]
        for label in splits["labels"]:
            of_class = part[part["label"] == label]
            rows.append({"part": part_name, "fold": fold, "label": label, "patients": of_class["patient_id"].nunique(),
                         "items": of_class["item_id"].nunique(), "frames": len(of_class)})

    count("test", "", splits["test"])
    for fold in splits["folds"]:
        count("train", str(fold["fold"]), fold["train"])
        count("val", str(fold["fold"]), fold["val"])
    return pd.DataFrame(rows)
