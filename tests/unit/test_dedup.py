import cv2
import numpy as np
import pandas as pd
import pytest

from sonoflow.dedup import (DedupSettings, candidate_pairs, crossing_pairs, dropped_items, duplicate_groups,
                            frame_embeddings, near_duplicates, patient_groups)
from sonoflow.split import LeakageError, SplitSettings, check_splits, make_splits, usable_frames

KINDS = ("resized", "cropped", "jpeg", "brighter")


def altered(image: np.ndarray, kind: str) -> np.ndarray:
    if kind == "resized":
        return cv2.resize(image, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    if kind == "cropped":
        return image[3:-4, 5:-2]
    if kind == "jpeg":
        return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_GRAYSCALE)
    return np.clip(image.astype(int) + 25, 0, 255).astype(np.uint8)


class Frames:
    """A frame store over one in-memory array, addressed by the `row` column."""

    def __init__(self, frames):
        self.frames = frames

    def gather(self, table):
        return self.frames[table["row"].to_numpy()]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Demo items (stills and clips) of 40 patients, plus altered copies of every fourth still
    filed under a new patient id each: (frame table, frames, planted item pairs)."""
    from sonoflow.demo import make_demo
    from sonoflow.frames import IngestSettings, ingest_item

    folder = tmp_path_factory.mktemp("dedup")
    sheet = make_demo(folder, n_patients_per_class=10, images_per_patient=2, clips_per_patient=1, seed=3)
    geometry = IngestSettings(size=128, max_frames=6)
    rows, frames, pairs = [], [], set()
    for row in sheet.itertuples():
        for frame in ingest_item(folder / row.path, geometry).frames:
            rows.append({"item_id": row.item_id, "patient_id": row.patient_id, "label": row.label})
            frames.append(frame)
    stills = sheet[sheet["path"].str.endswith(".png")].reset_index(drop=True)
    for k, row in enumerate(stills.iloc[::4].itertuples()):
        copy = folder / f"copy_{k}.png"
        cv2.imwrite(str(copy), altered(cv2.imread(str(folder / row.path), cv2.IMREAD_GRAYSCALE), KINDS[k % 4]))
        frames.append(ingest_item(copy, geometry).frames[0])
        rows.append({"item_id": f"copy_{k}", "patient_id": f"Q{k:03d}", "label": row.label})
        pairs.add(tuple(sorted((row.item_id, f"copy_{k}"))))
    table = pd.DataFrame(rows).assign(shard="00", row=lambda t: range(len(t)), split="", frame_index=0)
    return table, np.stack(frames), pairs


def test_every_planted_copy_is_found_and_no_distinct_demo_images_are_paired(planted):
    table, frames, pairs = planted
    found = near_duplicates(table, frame_embeddings(frames), Frames(frames), DedupSettings())
    found_pairs = set(zip(found["item_a"], found["item_b"]))
    true_positives = len(found_pairs & pairs)
    recall, precision = true_positives / len(pairs), true_positives / max(len(found_pairs), 1)
    print(f"{len(table)} frames, {len(pairs)} planted pairs ({', '.join(KINDS)}): recall {recall:.2f}, "
          f"precision {precision:.2f}; correlations {found['correlation'].min():.2f}-{found['correlation'].max():.2f}")
    assert recall == 1.0 and precision == 1.0, sorted(found_pairs ^ pairs)
    assert found["crosses_patients"].all() and (found["correlation"] >= 0.5).all()


def test_candidates_are_bounded_per_frame_and_never_within_one_item():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(0, 1, (500, 100)).astype(np.float32)
    embeddings[250:] = embeddings[:250] + rng.normal(0, 0.01, (250, 100))  # every frame has a twin
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    owner = np.arange(500) % 250  # ... but the twin is the same item
    settings = DedupSettings(radius=10.0, neighbours=5)
    pairs = candidate_pairs(embeddings, owner, settings)
    assert len(pairs) <= 500 * 5 and (owner[pairs[:, 0]] != owner[pairs[:, 1]]).all()
    assert len(candidate_pairs(embeddings, np.arange(500), settings)) >= 250, "twins of different items are found"


def test_a_long_clip_does_not_crowd_out_a_copy_in_another_item():
    rng = np.random.default_rng(1)
    clip = rng.normal(0, 1, 100)
    embeddings = np.stack([clip + rng.normal(0, 0.001, 100) for _ in range(60)]  # 60 near-identical frames
                          + [clip + rng.normal(0, 0.05, 100)]  # a copy of the clip's first frame, another item
                          + list(rng.normal(0, 1, (200, 100)))).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    owner = np.array([0] * 60 + [1] + list(range(2, 202)))
    pairs = candidate_pairs(embeddings, owner, DedupSettings(neighbours=4))
    assert {(i, 60) for i in range(60)} <= set(map(tuple, pairs.tolist())), "every clip frame finds the copy"


def pairs_table(links):
    return pd.DataFrame([{"item_a": a, "patient_a": pa, "item_b": b, "patient_b": pb} for a, pa, b, pb in links]).assign(
        crosses_patients=lambda t: t["patient_a"] != t["patient_b"])


def test_groups_are_transitive_and_drop_keeps_one_item_per_group():
    links = pairs_table([("a1", "A", "b1", "B"), ("b1", "B", "c1", "C"), ("d1", "D", "d2", "D")])
    assert patient_groups(links) == {"A": "A", "B": "A", "C": "A"}
    groups = duplicate_groups(links)
    assert groups.groupby("group")["item_id"].apply(sorted).tolist() == [["a1", "b1", "c1"], ["d1", "d2"]]
    assert dropped_items(links) == ["b1", "c1", "d2"]


def test_group_policy_keeps_every_planted_pair_on_one_side(planted):
    table, frames, pairs = planted
    found = near_duplicates(table, frame_embeddings(frames), Frames(frames), DedupSettings())
    labels = sorted(table["label"].unique())
    settings = SplitSettings(seed=5, test_fraction=0.25, folds=3)
    plain = crossing_pairs(found, make_splits(table, labels, settings))
    grouped_splits = make_splits(table, labels, settings, groups=patient_groups(found))
    grouped = crossing_pairs(found, grouped_splits)
    print(f"planted pairs crossing a split: {plain['crossing'].sum()} without grouping, {grouped['crossing'].sum()} with")
    assert plain["crossing"].sum() > 0, "the check must see pairs cross when nothing groups them"
    assert grouped["crossing"].sum() == 0
    # The split guard itself: a group split across train and validation is refused.
    leaky = {"test": [], "groups": {"A": "A", "B": "A"}, "labels": ["x"],
             "folds": [{"fold": 0, "train": ["A", "C"], "val": ["B", "D"]}]}
    with pytest.raises(LeakageError, match="split group A"):
        check_splits(leaky)


def test_drop_policy_takes_copies_out_of_the_split(planted):
    table, frames, pairs = planted
    found = near_duplicates(table, frame_embeddings(frames), Frames(frames), DedupSettings())
    excluded = dropped_items(found)
    splits = make_splits(table, sorted(table["label"].unique()), SplitSettings(seed=5, test_fraction=0.25, folds=3),
                         excluded_items=excluded)
    assert splits["excluded_items"] == excluded and len(excluded) == len(pairs)
    assert not set(usable_frames(table, splits)["item_id"]) & set(excluded)
    assert crossing_pairs(found, splits)["crossing"].sum() == 0


def test_planted_cross_label_copies_are_exactly_the_label_conflicts(planted):
    """Every other planted copy is filed under another label: those pairs, and only those, are
    conflicts; `conflicts: drop` removes every item of their groups before the split."""
    from sonoflow.dedup import conflicting_items, label_conflicts, policy_effects

    table, frames, pairs = planted
    labels = sorted(table["label"].unique())
    table = table.copy()
    relabelled = {copy for k, (_, copy) in enumerate(sorted(pairs)) if k % 2 == 0}
    for copy in relabelled:
        here = table["item_id"] == copy
        table.loc[here, "label"] = labels[(labels.index(table.loc[here, "label"].iloc[0]) + 1) % len(labels)]
    found = near_duplicates(table, frame_embeddings(frames), Frames(frames), DedupSettings())
    conflicts = label_conflicts(found)
    expected = {pair for pair in pairs if pair[1] in relabelled}
    print(f"{len(pairs)} planted copies, {len(expected)} under another label: {len(conflicts)} conflicts found")
    assert set(zip(conflicts["item_a"], conflicts["item_b"])) == expected
    assert (conflicts["label_a"] != conflicts["label_b"]).all() and conflicts["group"].notna().all()
    assert set(conflicting_items(found)) == {item for pair in expected for item in pair}
    # The split under each policy: `group` leaves no test item with a copy on the training side.
    table = table.assign(time_s=0.0, has_mask=False)
    effects = policy_effects(table, found, labels, SplitSettings(test_fraction=0.3, folds=2, seed=0)).set_index("policy")
    print(effects.to_string())
    assert effects.loc["group", "test_items_with_copy"] == 0 and effects.loc["drop", "test_items_with_copy"] == 0
    assert effects.loc["report", "test_items_with_copy"] > 0
    dropped = policy_effects(table, found, labels, SplitSettings(test_fraction=0.3, folds=2, seed=0), conflicts="drop")
    assert (dropped["items_dropped"] >= 2 * len(expected)).all()
