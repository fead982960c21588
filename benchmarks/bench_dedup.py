"""Near-duplicate detection at scale: the dedup stage on 1k, 10k and 100k generated frames.

Frames are synthetic 128x128 B-mode-like scans (a fan of correlated speckle over a smooth echo
map, each frame its own), one item per frame, with 1% planted copies (shifted 2 px, brightness
+20, re-noised) filed under another item. Times the stage as the workflow runs it: the
embedding of every frame (rule dedup_embed, per shard) and the candidate search plus
verification (rule dedup). Prints frames per second and, as the same-run baselines:
- the stage's own rate at the smallest size (near-linear growth keeps the ratio near 1);
- an exact all-pairs neighbour search over the same embeddings (blocked matrix products, the
  quadratic approach the HNSW search replaces), timed at every size against that search.
Recall of the planted copies is printed as a check that the timed stage did its job.

    python benchmarks/bench_dedup.py [--sizes 1000 10000 100000] [--no-all-pairs]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import pandas as pd

from sonoflow.dedup import DedupSettings, candidate_pairs, frame_embeddings, near_duplicates

SIZE = 128
SHARD = 4096  # frames per embedding call, as one ingest shard would hold
PLANTED_SHARE = 0.01


def fan_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(mask, (SIZE // 2, -SIZE // 4), (int(SIZE * 1.15),) * 2, 90, -35, 35, 1, -1)
    cv2.circle(mask, (SIZE // 2, -SIZE // 4), SIZE // 4, 0, -1)
    return mask


def make_frames(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 128, 128) uint8 frames and the planted (source, copy) index pairs."""
    rng = np.random.default_rng(seed)
    fan = fan_mask().astype(np.float32)
    depth = np.linspace(1.0, 0.45, SIZE, dtype=np.float32)[:, None]
    frames = np.empty((n, SIZE, SIZE), np.uint8)
    for start in range(0, n, 1024):
        stop = min(n, start + 1024)
        echo = rng.uniform(0.3, 1.0, (stop - start, 8, 8)).astype(np.float32)
        speckle = rng.rayleigh(1.0, (stop - start, SIZE, SIZE)).astype(np.float32)
        for k in range(stop - start):
            tissue = cv2.resize(echo[k], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
            grain = cv2.GaussianBlur(speckle[k], (0, 0), 0.8)
            frames[start + k] = np.clip(90 * tissue * grain * depth * fan, 0, 255)
    copies = max(1, int(n * PLANTED_SHARE))
    sources = rng.choice(n // 2, copies, replace=False)
    targets = n // 2 + rng.choice(n - n // 2, copies, replace=False)
    for source, target in zip(sources, targets):
        moved = np.roll(frames[source].astype(np.int16), (2, -2), axis=(0, 1)) + 20 + rng.integers(-3, 4, (SIZE, SIZE))
        frames[target] = np.clip(moved, 0, 255).astype(np.uint8) * (fan > 0)
    return frames, np.stack([sources, targets], axis=1)


class InMemoryFrames:
    """The stage's frame store over one array, addressed by the `row` column."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames

    def gather(self, table: pd.DataFrame) -> np.ndarray:
        return self.frames[table["row"].to_numpy()]


def all_pairs_neighbours(embeddings: np.ndarray, settings: DedupSettings, block: int = 2048) -> int:
    """Exact neighbours within the radius by all-pairs distances, block by block: the baseline."""
    found = 0
    squared = np.einsum("ij,ij->i", embeddings, embeddings)
    for start in range(0, len(embeddings), block):
        part = embeddings[start:start + block]
        distances = squared[start:start + block, None] + squared[None, :] - 2 * part @ embeddings.T
        found += int((distances < settings.radius ** 2).sum()) - len(part)
    return found


def measure(n: int, settings: DedupSettings, all_pairs: bool) -> dict:
    frames, planted = make_frames(n)
    table = pd.DataFrame({"item_id": [f"item{i:06d}" for i in range(n)], "patient_id": [f"P{i:06d}" for i in range(n)],
                          "label": "x", "shard": "00", "row": np.arange(n)})
    started = time.perf_counter()
    embeddings = np.concatenate([frame_embeddings(frames[s:s + SHARD]) for s in range(0, n, SHARD)])
    embedded = time.perf_counter()
    pairs = near_duplicates(table, embeddings, InMemoryFrames(frames), settings)
    finished = time.perf_counter()
    candidate_pairs(embeddings, np.arange(n), settings)
    searched = time.perf_counter()
    if all_pairs:
        all_pairs_neighbours(embeddings, settings)
    found = set(zip(pairs["item_a"], pairs["item_b"]))
    return {"frames": n, "embed_s": embedded - started, "search_verify_s": finished - embedded,
            "stage_s": finished - started, "pairs": len(pairs), "planted": len(planted),
            "recall": np.mean([(f"item{a:06d}", f"item{b:06d}") in found for a, b in planted]),
            "search_s": searched - finished, "all_pairs_search_s": time.perf_counter() - searched if all_pairs else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--no-all-pairs", action="store_true", help="skip the all-pairs baseline")
    args = parser.parse_args()
    settings = DedupSettings()
    measure(500, settings, all_pairs=False)  # untimed: pays the imports
    rows = []
    for n in args.sizes:
        rows.append(measure(n, settings, not args.no_all_pairs))
        print(f"  {n} frames done: stage {rows[-1]['stage_s']:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    table["frames_per_s"] = table["frames"] / table["stage_s"]
    table["rate_vs_smallest"] = table["frames_per_s"] / table["frames_per_s"].iloc[0]
    if not args.no_all_pairs:
        table["all_pairs_vs_search"] = table["all_pairs_search_s"] / table["search_s"]
    print("dedup stage (embedding per shard + HNSW candidates + verification), one item per frame")
    print("baselines: the stage's own rate at the smallest size; an exact all-pairs neighbour search")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
