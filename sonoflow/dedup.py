"""Near-duplicate images across items: the same image (or a re-export, crop or resize of it)
filed under two names or two patients crosses a patient-level split and inflates every figure.

Two steps, on the ingested frames (already cropped to their scan area and fitted to one size,
which takes out most re-export differences):

1. A small embedding per frame, computed per shard: the low-frequency DCT coefficients of a
   high-passed 32x32 thumbnail, unit length; insensitive to brightness and contrast, resizing and
   re-compression, and coarse enough to tolerate a few pixels of crop. Each frame's nearest
   neighbours within a radius are found with an HNSW graph (faiss) on its leading principal
   components, at most ``neighbours`` per frame: no all-pairs comparison, the work grows about
   as n log n.
2. Each candidate pair is verified by the normalised cross-correlation of the two frames'
   band-passed scan interiors, searched over small shifts: copies share their speckle pattern,
   distinct images (however alike in anatomy) do not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
from scipy import fft, sparse
from scipy.sparse.csgraph import connected_components

from sonoflow.settings import Settings

log = logging.getLogger("sonoflow.dedup")

POLICIES = ("report", "group", "drop")
CONFLICT_POLICIES = ("keep", "drop")
# HNSW graph (faiss): links per node, and the candidate lists kept while building and searching.
HNSW_LINKS = 16
HNSW_BUILD_BREADTH = 40
HNSW_SEARCH_BREADTH = 48
# Candidate pairs verified per block: bounds the band-passed frames held in memory.
VERIFY_BLOCK = 5000


@dataclass(frozen=True)
class DedupSettings(Settings):
    SECTION = "dedup"

    enabled: bool = True
    policy: str = "group"  # report (warn and list) | group (one split group) | drop (keep one item)
    conflicts: str = "keep"  # keep (warn) | drop (every item of a group whose labels disagree)
    radius: float = 0.3  # embedding distance (unit vectors, leading components) of a candidate pair
    full_radius: float = 0.5  # ... and on the whole embedding (copies <= 0.25 on the demo, 0.44 in bench_dedup)
    neighbours: int = 32  # candidates per frame at most (bounds the work at any data density)
    min_correlation: float = 0.5  # verified duplicate: band-passed correlation at the best small shift
    components: int = 16  # principal components the neighbour search works in
    max_shift: float = 0.08  # shifts searched, as a share of the frame side
    seed: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"dedup policy must be one of {POLICIES}, got {self.policy!r}")
        if self.conflicts not in CONFLICT_POLICIES:
            raise ValueError(f"dedup conflicts must be one of {CONFLICT_POLICIES}, got {self.conflicts!r}")
        if not 0 < self.min_correlation < 1:
            raise ValueError(f"dedup min_correlation must be in (0, 1), got {self.min_correlation}")


def frame_embeddings(frames: np.ndarray) -> np.ndarray:
    """(N, 100) float32 unit vectors for uint8 frames (N, H, W): DCT coefficients 1..10 in both
    directions of the 32x32 thumbnail minus its blur (the constant and the slow depth
    attenuation common to all scans carry no identity)."""
    if len(frames) == 0:
        return np.zeros((0, 100), np.float32)
    small = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in frames]).astype(np.float32)
    small -= np.stack([cv2.GaussianBlur(s, (0, 0), 4) for s in small])
    coefficients = fft.dctn(small, axes=(1, 2), norm="ortho")[:, 1:11, 1:11].reshape(len(frames), -1)
    norms = np.linalg.norm(coefficients, axis=1, keepdims=True)
    return (coefficients / np.where(norms > 0, norms, 1)).astype(np.float32)


def candidate_pairs(embeddings: np.ndarray, owner: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """Index pairs (M, 2), i < j, of frames of different owners (items): each frame's nearest
    neighbours on the leading principal components, found with an HNSW graph (faiss; about
    n log n, where a KD-tree in 16 dimensions degrades towards all pairs), kept when within
    ``radius`` there and within ``full_radius`` on the whole embedding (the projection shrinks
    distances, so frames close on the leading components may be far apart)."""
    import faiss
    from sklearn.decomposition import PCA

    n = len(embeddings)
    if n < 2:
        return np.zeros((0, 2), np.int64)
    points = embeddings
    if n > settings.components and embeddings.shape[1] > settings.components:
        points = PCA(settings.components, random_state=settings.seed).fit_transform(embeddings)
    points = np.ascontiguousarray(points, dtype=np.float32)
    # ``neighbours`` others besides every frame of the largest item: a clip's own frames, its
    # nearest neighbours, must not crowd out a copy filed under another item.
    k = min(settings.neighbours + int(np.bincount(owner).max()), n)
    faiss.omp_set_num_threads(1)  # a graph built by one thread is the same graph on every run
    index = faiss.IndexHNSWFlat(points.shape[1], HNSW_LINKS)
    index.hnsw.efConstruction = HNSW_BUILD_BREADTH
    index.add(points)
    index.hnsw.efSearch = max(HNSW_SEARCH_BREADTH, k)
    squared, neighbour = index.search(points, k)  # squared L2 distances
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    keep = (neighbour >= 0) & (neighbour != rows) & (squared <= settings.radius ** 2)
    left, right = rows[keep], neighbour[keep]
    keep = owner[left] != owner[right]
    left, right = left[keep], right[keep]
    keep = np.linalg.norm(embeddings[left] - embeddings[right], axis=1) <= settings.full_radius
    left, right = left[keep], right[keep]
    codes = np.unique(np.minimum(left, right).astype(np.int64) * n + np.maximum(left, right))
    return np.stack([codes // n, codes % n], axis=1)


def band_pass(frame: np.ndarray) -> np.ndarray:
    """Speckle-scale structure of the scan interior: a difference of Gaussians, zero outside the
    (eroded) scan area so that the fan outline all scans share does not correlate."""
    frame = frame.astype(np.float32)
    scale = frame.shape[0] / 128
    inside = cv2.GaussianBlur(frame, (0, 0), 2 * scale) > 12
    inside = cv2.erode(inside.astype(np.uint8), np.ones((max(3, int(9 * scale)) | 1,) * 2, np.uint8))
    return (cv2.GaussianBlur(frame, (0, 0), 0.8 * scale) - cv2.GaussianBlur(frame, (0, 0), 3 * scale)) * inside


def correlation(a: np.ndarray, b: np.ndarray, max_shift: float) -> float:
    """Highest normalised cross-correlation of two band-passed frames over shifts up to
    ``max_shift`` of the side (the centre of ``a`` slid over ``b``)."""
    margin = max(1, int(round(max_shift * a.shape[0])))
    template = a[margin:-margin, margin:-margin]
    if not template.any() or not b.any():
        return 0.0
    return float(cv2.matchTemplate(b, template, cv2.TM_CCOEFF_NORMED).max())


def near_duplicates(frames: pd.DataFrame, embeddings: np.ndarray, store, settings: DedupSettings) -> pd.DataFrame:
    """Verified near-duplicate pairs of frames of different items, one row per item pair (its
    most correlated frames): ids and patients of both sides, embedding distance, correlation."""
    frames = frames.reset_index(drop=True)
    owner = pd.factorize(frames["item_id"])[0]
    pairs = candidate_pairs(embeddings, owner, settings)
    scores = np.zeros(len(pairs))
    # Block by block, so that only the frames of one block are held band-passed (float32) at a time.
    for start in range(0, len(pairs), VERIFY_BLOCK):
        block = pairs[start:start + VERIFY_BLOCK]
        needed = np.unique(block)
        filtered = {i: band_pass(f) for i, f in zip(needed, store.gather(frames.iloc[needed]))}
        scores[start:start + len(block)] = [correlation(filtered[i], filtered[j], settings.max_shift) for i, j in block]
    candidates = len(pairs)
    verified = scores >= settings.min_correlation
    pairs, scores = pairs[verified], scores[verified]
    a = frames.iloc[pairs[:, 0]].reset_index(drop=True)
    b = frames.iloc[pairs[:, 1]].reset_index(drop=True)
    table = pd.DataFrame({"item_a": a["item_id"], "patient_a": a["patient_id"], "shard_a": a["shard"], "row_a": a["row"],
                          "label_a": a["label"], "item_b": b["item_id"], "patient_b": b["patient_id"],
                          "shard_b": b["shard"], "row_b": b["row"], "label_b": b["label"],
                          "distance": np.linalg.norm(embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]], axis=1)
                          if len(pairs) else np.zeros(0), "correlation": scores})
    swap = table["item_a"] > table["item_b"]  # one orientation per item pair
    for column in ("item", "patient", "shard", "row", "label"):
        table.loc[swap, [f"{column}_a", f"{column}_b"]] = table.loc[swap, [f"{column}_b", f"{column}_a"]].to_numpy()
    table = table.sort_values("correlation", ascending=False, kind="stable").drop_duplicates(["item_a", "item_b"])
    table["crosses_patients"] = table["patient_a"] != table["patient_b"]
    log.info("%d frames: %d candidate pairs, %d verified near-duplicate item pairs (%d across patients)",
             len(frames), candidates, len(table), int(table["crosses_patients"].sum()))
    return table.sort_values(["item_a", "item_b"]).reset_index(drop=True)


def read_pairs(path) -> pd.DataFrame:
    """A pairs table as ``near_duplicates`` wrote it: ids stay strings (``007`` is not 7)."""
    ids = {f"{column}_{side}": str for column in ("item", "patient") for side in "ab"}
    return pd.read_csv(path, dtype=ids, keep_default_na=False)


def duplicate_groups(pairs: pd.DataFrame) -> pd.DataFrame:
    """Items linked by near-duplicate pairs (connected components): group, item, patient."""
    if pairs.empty:
        return pd.DataFrame(columns=["group", "item_id", "patient_id"])
    items = pd.concat([pairs[["item_a", "patient_a"]].set_axis(["item_id", "patient_id"], axis=1),
                       pairs[["item_b", "patient_b"]].set_axis(["item_id", "patient_id"], axis=1)]).drop_duplicates("item_id")
    index = {item: i for i, item in enumerate(items["item_id"])}
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs["item_a"].map(index), pairs["item_b"].map(index))),
                              shape=(len(index), len(index)))
    _, labels = connected_components(graph, directed=False)
    return items.assign(group=labels).sort_values(["group", "item_id"]).reset_index(drop=True)[["group", "item_id", "patient_id"]]


def patient_groups(pairs: pd.DataFrame) -> dict[str, str]:
    """Patient -> split group for the `group` policy: patients linked by a near-duplicate pair
    (directly or through others) share the group named by their smallest patient id."""
    crossing = pairs[pairs["crosses_patients"]]
    if crossing.empty:
        return {}
    patients = sorted(set(crossing["patient_a"]) | set(crossing["patient_b"]))
    index = {p: i for i, p in enumerate(patients)}
    graph = sparse.coo_matrix((np.ones(len(crossing)), (crossing["patient_a"].map(index), crossing["patient_b"].map(index))),
                              shape=(len(patients), len(patients)))
    _, labels = connected_components(graph, directed=False)
    first = {}
    for patient, label in zip(patients, labels):
        first.setdefault(label, patient)
    return {patient: first[label] for patient, label in zip(patients, labels)}


def dropped_items(pairs: pd.DataFrame) -> list[str]:
    """For the `drop` policy: every item of a duplicate group but the first (by item id)."""
    groups = duplicate_groups(pairs)
    return sorted(groups.loc[groups.duplicated("group"), "item_id"])


def label_conflicts(pairs: pd.DataFrame) -> pd.DataFrame:
    """Near-duplicate pairs filed under two different labels, with the duplicate group they belong
    to: the same image (or lesion) cannot be both, so one label is wrong, or the pair shows a
    model the answer. Empty (same columns) when there are none."""
    groups = duplicate_groups(pairs).set_index("item_id")["group"]
    conflicts = pairs[pairs["label_a"] != pairs["label_b"]].copy()
    conflicts.insert(0, "group", conflicts["item_a"].map(groups).astype("Int64"))
    return conflicts.reset_index(drop=True)


def conflicting_items(pairs: pd.DataFrame) -> list[str]:
    """For ``conflicts: drop``: every item of a duplicate group whose items carry more than one
    label (not just the two sides of a conflicting pair: a copy of either side is as doubtful)."""
    groups = duplicate_groups(pairs)
    if groups.empty:
        return []
    labels = pd.concat([pairs[["item_a", "label_a"]].set_axis(["item_id", "label"], axis=1),
                        pairs[["item_b", "label_b"]].set_axis(["item_id", "label"], axis=1)]).drop_duplicates("item_id")
    groups = groups.merge(labels, on="item_id")
    mixed = groups.groupby("group")["label"].nunique()
    return sorted(groups.loc[groups["group"].isin(mixed[mixed > 1].index), "item_id"])


def conflict_summary(conflicts: pd.DataFrame, shown: int = 5) -> str:
    """One log line: how many conflicting pairs, and the first few as item (label) ~ item (label)."""
    first = ", ".join(f"{row.item_a} ({row.label_a}) ~ {row.item_b} ({row.label_b})"
                      for row in conflicts.head(shown).itertuples())
    more = f" and {len(conflicts) - shown} more" if len(conflicts) > shown else ""
    return (f"{len(conflicts)} near-duplicate item pairs carry different labels, in "
            f"{conflicts['group'].nunique()} duplicate groups: {first}{more}")


def test_items_with_copy(pairs: pd.DataFrame, splits: Mapping) -> int:
    """Test items that have a near-duplicate on a patient outside the test set (the training
    side: training or validation of any fold). Dropped items take no part."""
    dropped = set(splits.get("excluded_items", []))
    pairs = pairs[~pairs["item_a"].isin(dropped) & ~pairs["item_b"].isin(dropped)]
    test = set(splits["test"])
    a_test, b_test = pairs["patient_a"].isin(test), pairs["patient_b"].isin(test)
    return len(set(pairs.loc[a_test & ~b_test, "item_a"]) | set(pairs.loc[b_test & ~a_test, "item_b"]))


def policy_effects(frames: pd.DataFrame, pairs: pd.DataFrame, labels: Sequence[str], split_settings,
                   conflicts: str = "keep") -> pd.DataFrame:
    """What each near-duplicate policy would do to this data set: the split drawn under
    ``report``, ``group`` and ``drop`` (same seed), and per policy how many test items keep a
    near-duplicate on the training side, how many items are dropped and patients grouped."""
    from sonoflow.split import make_splits

    removed = conflicting_items(pairs) if conflicts == "drop" else []
    rows = []
    for policy in POLICIES:
        excluded = sorted(set(removed) | set(dropped_items(pairs) if policy == "drop" else []))
        splits = make_splits(frames, labels, split_settings, groups=patient_groups(pairs) if policy == "group" else None,
                             excluded_items=excluded)
        test_items = frames.loc[frames["patient_id"].isin(set(splits["test"])) & ~frames["item_id"].isin(set(excluded)),
                                "item_id"].nunique()
        rows.append({"policy": policy, "test_items": test_items,
                     "test_items_with_copy": test_items_with_copy(pairs, splits),
                     "items_dropped": len(excluded), "patients_grouped": len(splits["groups"])})
    return pd.DataFrame(rows)


def crossing_pairs(pairs: pd.DataFrame, splits: Mapping) -> pd.DataFrame:
    """Near-duplicate pairs whose items lie on two sides of a split, per fold: train-val,
    train-test and val-test. Dropped items (policy drop) take no side."""
    dropped = set(splits.get("excluded_items", []))
    pairs = pairs[~pairs["item_a"].isin(dropped) & ~pairs["item_b"].isin(dropped)]
    test = set(splits["test"])
    rows = []
    for fold in splits["folds"]:
        side = {**{p: "train" for p in fold["train"]}, **{p: "val" for p in fold["val"]}, **{p: "test" for p in test}}
        a, b = pairs["patient_a"].map(side), pairs["patient_b"].map(side)
        row = {"fold": fold["fold"], "pairs": len(pairs)}
        for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
            row[f"{first}_{second}"] = int((((a == first) & (b == second)) | ((a == second) & (b == first))).sum())
        row["crossing"] = row["train_val"] + row["train_test"] + row["val_test"]
        row["test_items_with_copy"] = test_items_with_copy(pairs, splits)
        rows.append(row)
    return pd.DataFrame(rows, columns=["fold", "pairs", "train_val", "train_test", "val_test", "crossing",
                                       "test_items_with_copy"])
