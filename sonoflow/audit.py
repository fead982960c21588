"""Marks burned into the scan area: calipers (crosses, plus signs), measurement lines and dotted
lines, text, and colour (Doppler boxes, coloured annotations).

The sector crop at ingest removes what lies around the scan; these sit on it. When they are more
frequent in one class (a radiologist measures the suspicious lesion), a model learns the marks.
This module finds them on the ingested (cropped, fixed-size, gray) frames:

- candidates are pixels that are near-saturated and much brighter than their neighbourhood at
  the scale of a stroke (a white top-hat with a kernel a little wider than ``max_width``): thin,
  high-contrast structures; tissue edges and large bright reflectors are wider than the kernel;
- candidates form connected components, each judged by its shape: ``text`` (four or more glyphs
  of similar height on one baseline), a ``cross`` (nearly every pixel on two strokes through a
  centre, a plus or an x, with four arms), a ``line`` (one pixel wide, ruler-straight, saturated),
  a saturated dot in a straight row of three or more at regular spacing (``dots``, a dotted line);
  a lone dot or blob is speckle and is ignored;
- ``colour`` comes from ingest (the ``colour`` column of frames.csv: the share of the scan area
  that was coloured before the frame went to grayscale).

Per frame: kinds, counts, boxes and a mark mask, which ``inpaint`` fills with OpenCV inpainting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from sonoflow.settings import Settings

log = logging.getLogger("sonoflow.audit")

POLICIES = ("report", "inpaint", "drop")
SATURATED = 245  # grey levels from here on are saturated: marks, never the reference for tissue
KINDS = ("cross", "line", "dots", "text", "colour")
MARK_COLUMNS = ["row", "item_id", "patient_id", "label", "marked", "kinds", "count",
                *[f"n_{kind}" for kind in KINDS], "colour", "boxes"]


@dataclass(frozen=True)
class AuditSettings(Settings):
    SECTION = "audit"
    # Keys of `audit` per consumer (its rule's params), so that choosing a policy or retuning the
    # probe reruns no detector.
    DETECTOR_KEYS = ("bright", "rare", "contrast", "max_width", "max_size", "colour")
    PROBE_KEYS = ("probe_folds", "probe_boot", "probe_warn", "seed")

    enabled: bool = True
    marks: str = "report"  # report (list) | inpaint (fill the marks before denoise) | drop (leave marked frames out)
    bright: int = 170  # a mark pixel's grey level at least (near-saturated after the resize to ingest.size)
    rare: float = 0.005  # ... and above all but this share of the scan's pixels
    contrast: int = 50  # ... and this much above the neighbourhood at stroke scale (white top-hat)
    max_width: float = 0.012  # a stroke is at most this wide, share of the frame side
    max_size: float = 0.25  # a mark's box side at most, share of the frame side (larger: tissue)
    colour: float = 0.002  # share of the scan area in colour that flags a frame
    inpaint_radius: int = 3  # OpenCV inpainting radius, pixels
    # Shortcut probe: patient-grouped folds, bootstrap resamples for the 95% CI, warning level.
    probe_folds: int = 5
    probe_boot: int = 1000
    probe_warn: float = 0.65  # a probe AUC whose CI lower bound is above this gets a warning
    seed: int = 0

    def __post_init__(self) -> None:
        if self.marks not in POLICIES:
            raise ValueError(f"audit marks must be one of {POLICIES}, got {self.marks!r}")
        if not 0 < self.max_width < self.max_size <= 1:
            raise ValueError(f"audit needs 0 < max_width < max_size <= 1, got {self.max_width}, {self.max_size}")
        if self.probe_folds < 2:
            raise ValueError(f"audit probe_folds must be >= 2, got {self.probe_folds}")

    @classmethod
    def params(cls, config: Mapping, keys: Sequence[str]) -> dict:
        """The keys of the `audit` section one consumer reads (DETECTOR_KEYS, PROBE_KEYS)."""
        return {key: config[key] for key in keys}


def scan_area(frame: np.ndarray) -> np.ndarray:
    """The scan interior of an ingested frame (zero outside the sector and in the letterbox),
    eroded a little so that the bright rim of a sector is no mark."""
    inside = cv2.morphologyEx((frame > 0).view(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return cv2.erode(inside, np.ones((5, 5), np.uint8)).astype(bool)


def _components(candidates: np.ndarray):
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(candidates.view(np.uint8), connectivity=8)
    return labels, stats[1:], centroids[1:]


def _rows(points: np.ndarray, eps: float, min_count: int) -> list[np.ndarray]:
    """Groups of at least ``min_count`` points chained by neighbours closer than ``eps``."""
    if len(points) < min_count:
        return []
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(points).query_pairs(eps, output_type="ndarray")
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2) \
        if len(pairs) else sparse.coo_matrix((len(points),) * 2)
    _, labels = connected_components(graph, directed=False)
    return [np.flatnonzero(labels == k) for k in np.unique(labels) if (labels == k).sum() >= min_count]


def _straight(points: np.ndarray, tolerance: float) -> bool:
    """Points on one straight line (the spread across its main direction below ``tolerance``)."""
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return singular[-1] / np.sqrt(len(points)) <= tolerance


def _cross_shaped(points: np.ndarray, stroke: int) -> bool:
    """Pixels (y, x) of a component that lie on two strokes through its centre: a plus sign
    (a row and a column) or an x (the two diagonals), with both arms present. Speckle clumps
    are irregular and fail."""
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    dy, dx = (points - centre).T
    tolerance = 0.5 * stroke + 0.75
    extent = np.ptp(points, axis=0).max() + 1
    diagonal_a, diagonal_b = (dy - dx) / np.sqrt(2), (dy + dx) / np.sqrt(2)
    # (across stroke 1, along stroke 1, across stroke 2, along stroke 2): a plus, then an x.
    for across_1, along_1, across_2, along_2 in ((dy, dx, dx, dy), (diagonal_a, diagonal_b, diagonal_b, diagonal_a)):
        on_1, on_2 = np.abs(across_1) <= tolerance, np.abs(across_2) <= tolerance
        arm = tolerance + 1  # four arms: stroke pixels well beyond the centre on both sides of both strokes
        arms = [(along_1[on_1] > arm).sum(), (along_1[on_1] < -arm).sum(),
                (along_2[on_2] > arm).sum(), (along_2[on_2] < -arm).sum()]
        # Nearly every pixel on one of the two strokes, each stroke continuous over most of the box.
        if (on_1 | on_2).mean() >= 0.9 and min(arms) >= 2 and min(on_1.sum(), on_2.sum()) >= 0.6 * extent:
            return True
    return False


def detect_marks(frame: np.ndarray, settings: AuditSettings = AuditSettings()) -> tuple[list[tuple], np.ndarray]:
    """Burned-in marks of one ingested gray frame: a list of (kind, y0, y1, x0, x1) boxes
    (end-exclusive) and the mark mask (uint8 0/1, the marks' pixels widened by one)."""
    side = frame.shape[0]
    stroke = max(1, int(round(settings.max_width * side)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * stroke + 3,) * 2)
    tophat = cv2.morphologyEx(frame, cv2.MORPH_TOPHAT, kernel)
    inside = scan_area(frame)
    # Near-saturated: at least ``bright``, and above all but the brightest ``rare`` share of the
    # scan (bright speckle of a bright scan is as frequent as it is bright; marks are rare).
    # Saturated pixels take no part in that percentile: the marks themselves must not raise it.
    tissue = frame[inside & (frame < SATURATED)]
    level = min(max(settings.bright, float(np.percentile(tissue, 100 * (1 - settings.rare)))), SATURATED) \
        if tissue.size else settings.bright
    candidates = (tophat >= settings.contrast) & (frame >= level) & inside
    labels, stats, centroids = _components(candidates)
    largest = settings.max_size * side
    boxes: list[tuple] = []
    keep = np.zeros(len(stats), bool)
    # Text first: four or more glyphs of similar height on one baseline, side by side in a row
    # wider than twice its height (a glyph may look like a cross: "+", "x", "4").
    glyphs = [k for k, (x, y, w, h, area) in enumerate(stats) if h >= 3 and max(w, h) <= 0.1 * side]
    if glyphs:
        centres = centroids[glyphs] * [1.0, 3.0]  # rows: vertical distance counts three times
        for members in _rows(centres, 0.06 * side, 4):
            chosen = [glyphs[m] for m in members]
            heights, bottoms = stats[chosen, 3], stats[chosen, 1] + stats[chosen, 3]
            x0, y0 = stats[chosen, 0].min(), stats[chosen, 1].min()
            x1, y1 = (stats[chosen, 0] + stats[chosen, 2]).max(), bottoms.max()
            if heights.max() <= 2 * heights.min() and np.median(np.abs(bottoms - np.median(bottoms))) <= 1 \
                    and x1 - x0 >= 2 * (y1 - y0):
                boxes.append(("text", int(y0), int(y1), int(x0), int(x1)))
                keep[chosen] = True
    dots = []
    for k, (x, y, w, h, area) in enumerate(stats):
        long, short = max(w, h), min(w, h)
        if keep[k] or long > largest:
            continue  # text already, or a large bright structure: tissue, not a mark
        own = labels[y:y + h, x:x + w] == k + 1
        points = np.column_stack(np.nonzero(own)).astype(float)
        values = frame[y:y + h, x:x + w][own]
        if short >= 5 and long <= 2 * short and _cross_shaped(points, stroke):
            boxes.append(("cross", y, y + h, x, x + w))
            keep[k] = True
        elif long >= max(6, 0.05 * side) and area / long <= 1.5 and _straight(points, 0.5) \
                and values.mean() >= SATURATED:
            # A drawn line is one pixel wide, ruler-straight and saturated; fibres and fascia are not.
            boxes.append(("line", y, y + h, x, x + w))
            keep[k] = True
        elif long <= 3 and area <= 6 and values.max() >= SATURATED:
            dots.append(k)  # a saturated dot: one of a dotted line, if it has neighbours in a row
    # Dotted lines: three or more dots in a straight row at about regular spacing.
    if dots:
        for members in _rows(centroids[dots], 0.08 * side, 3):
            chosen = [dots[m] for m in members]
            points = centroids[chosen]
            if _straight(points, 0.75):
                order = np.argsort(points @ np.linalg.svd(points - points.mean(0))[2][0])
                gaps = np.linalg.norm(np.diff(points[order], axis=0), axis=1)
                if gaps.min() >= 2 and gaps.max() <= 2.5 * gaps.min():
                    x0, y0 = stats[chosen, 0].min(), stats[chosen, 1].min()
                    x1, y1 = (stats[chosen, 0] + stats[chosen, 2]).max(), (stats[chosen, 1] + stats[chosen, 3]).max()
                    boxes.append(("dots", int(y0), int(y1), int(x0), int(x1)))
                    keep[chosen] = True
    mask = np.isin(labels, 1 + np.flatnonzero(keep)).view(np.uint8) if keep.any() else np.zeros_like(frame)
    if keep.any():
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return [(kind, int(a), int(b), int(c), int(d)) for kind, a, b, c, d in boxes], mask


def audit_frames(frames: np.ndarray, table: pd.DataFrame, settings: AuditSettings = AuditSettings()
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Marks of every frame of one shard: a table (MARK_COLUMNS, one row per frame in ``row``
    order) and the mark masks (N, H, W) uint8 0/1. ``table`` is the shard's frames.csv; its
    ``colour`` column (when present) flags colour."""
    table = table.sort_values("row").reset_index(drop=True)
    if len(table) != len(frames):
        raise ValueError(f"frame table has {len(table)} rows but the array {len(frames)} frames")
    colour = table["colour"].to_numpy(float) if "colour" in table else np.zeros(len(table))
    masks = np.zeros(frames.shape, np.uint8)
    rows = []
    for i, frame in enumerate(frames):
        boxes, masks[i] = detect_marks(np.asarray(frame), settings)
        if colour[i] >= settings.colour:
            boxes.append(("colour", 0, frame.shape[0], 0, frame.shape[1]))
        counts = {kind: sum(box[0] == kind for box in boxes) for kind in KINDS}
        rows.append({"row": int(table["row"].iloc[i]), "item_id": table["item_id"].iloc[i],
                     "patient_id": table["patient_id"].iloc[i], "label": table["label"].iloc[i],
                     "marked": bool(boxes), "kinds": ";".join(k for k in KINDS if counts[k]), "count": len(boxes),
                     **{f"n_{kind}": counts[kind] for kind in KINDS}, "colour": float(colour[i]),
                     "boxes": json.dumps([list(box) for box in boxes])})
    return pd.DataFrame(rows, columns=MARK_COLUMNS), masks


def inpaint_marks(frames: np.ndarray, masks: np.ndarray, radius: int = 3) -> np.ndarray:
    """The frames with their mark masks filled by OpenCV inpainting (Telea); unmarked frames are
    copied unchanged. Colour regions are not in the masks: a Doppler box is no thin overlay."""
    out = np.array(frames, copy=True)
    for i in np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1)):
        out[i] = cv2.inpaint(np.ascontiguousarray(frames[i]), masks[i], radius, cv2.INPAINT_TELEA)
    return out


def read_marks(paths: Sequence) -> pd.DataFrame:
    """Per-shard mark tables as one, with a ``shard`` column (ids stay strings)."""
    from sonoflow.dataset import shard_name

    parts = []
    for path in paths:
        part = pd.read_csv(path, dtype={"item_id": str, "patient_id": str, "label": str, "kinds": str},
                           keep_default_na=False)
        part.insert(0, "shard", shard_name(path))
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["shard", *MARK_COLUMNS])


def marked_frames(marks: pd.DataFrame) -> list[str]:
    """For ``marks: drop``: the 'shard:row' keys (``split.frame_key``) of every marked frame."""
    from sonoflow.split import frame_key

    return sorted(frame_key(marks[marks["marked"].astype(str).str.lower() == "true"]))


def marks_per_class(marks: pd.DataFrame) -> pd.DataFrame:
    """Per label: frames, marked frames (share) and frames with each kind of mark."""
    marked = marks["marked"].astype(str).str.lower() == "true"
    table = marks.assign(marked=marked, **{kind: marks[f"n_{kind}"] > 0 for kind in KINDS}).groupby("label").agg(
        frames=("row", "size"), marked=("marked", "sum"), **{kind: (kind, "sum") for kind in KINDS})
    table.insert(2, "marked_share", (table["marked"] / table["frames"]).round(3))
    return table.reset_index()


# --- Planted marks: for the tests and benchmarks/bench_audit.py -------------------------------


def plant_marks(image: np.ndarray, inside: np.ndarray, kinds: Sequence[str], rng: np.random.Generator
                ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Burn marks into a gray scan image (H, W) where ``inside`` (its scan area) is true, as
    scanners draw them: ``caliper`` (two crosses, a measurement), ``dots`` (a dotted line),
    ``text`` (a measurement label), ``doppler`` (a colour box with flow). Returns the image (BGR
    when a Doppler box was planted, else gray) and each planted mark with its pixel mask."""
    height, width = image.shape
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if "doppler" in kinds else image.copy()
    planted = []
    ys, xs = np.nonzero(cv2.erode(inside.view(np.uint8), np.ones((31, 31), np.uint8)))

    def spot():
        k = rng.integers(len(ys))
        return int(xs[k]), int(ys[k])

    def burn(draw) -> np.ndarray:
        mask = np.zeros((height, width), np.uint8)
        draw(mask, 1)
        draw(out, (255, 255, 255) if out.ndim == 3 else 255)
        return mask.astype(bool)

    for kind in kinds:
        if kind == "caliper":
            for _ in range(2):
                x, y = spot()
                size, shape = int(rng.integers(9, 16)), [cv2.MARKER_CROSS, cv2.MARKER_TILTED_CROSS][rng.integers(2)]
                planted.append(("caliper", burn(lambda im, c: cv2.drawMarker(im, (x, y), c, shape, size, 1))))
        elif kind == "dots":
            (x0, y0), angle = spot(), rng.uniform(0, np.pi)
            steps = [(int(x0 + 7 * t * np.cos(angle)), int(y0 + 7 * t * np.sin(angle))) for t in range(6)]
            steps = [(x, y) for x, y in steps if 0 <= y < height and 0 <= x < width and inside[y, x]]

            def dotted(im, c):
                for x, y in steps:
                    cv2.circle(im, (x, y), 1, c, -1)
            planted.append(("dots", burn(dotted)))
        elif kind == "text":
            x, y = spot()
            label = f"D{rng.integers(1, 4)} {rng.uniform(0.3, 3.0):.2f}cm"
            x = min(x, width - 80)
            planted.append(("text", burn(lambda im, c: cv2.putText(im, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                                                                   c, 1, cv2.LINE_AA))))
        elif kind == "doppler":
            x, y = spot()
            w, h = int(rng.integers(40, 70)), int(rng.integers(30, 50))
            x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
            box = np.zeros((height, width), np.uint8)
            cv2.rectangle(box, (x0, y0), (x0 + w, y0 + h), 1, -1)
            box &= inside.view(np.uint8)
            flow = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 4)
            red, blue = (flow > 0.05) & (box > 0), (flow < -0.05) & (box > 0)
            out[red] = (30, 30, 220)
            out[blue] = (220, 60, 30)
            cv2.rectangle(out, (x0, y0), (x0 + w, y0 + h), (200, 200, 200), 1)
            planted.append(("doppler", box.astype(bool)))
        else:
            raise ValueError(f"cannot plant mark kind {kind!r}")
    return out, planted


# --- The audit summary ---------------------------------------------------------------------------


def audit_summary(marks: pd.DataFrame, shortcuts: pd.DataFrame, pairs: pd.DataFrame | None = None,
                  conflicts: pd.DataFrame | None = None, policies: pd.DataFrame | None = None,
                  marks_policy: str = "report", dedup_policy: str | None = None,
                  conflicts_policy: str | None = None) -> pd.DataFrame:
    """Everything the audit found, one row per finding: section, finding, value, note (what the
    configured policy does about it, and what the others would change)."""
    rows = []

    def add(section, finding, value, note=""):
        rows.append({"section": section, "finding": finding, "value": value, "note": note})

    if pairs is not None:
        crossing = pairs["crosses_patients"].astype(str).str.lower() == "true"
        add("duplicates", "near-duplicate item pairs within one patient", int((~crossing).sum()))
        add("duplicates", "near-duplicate item pairs across patients", int(crossing.sum()),
            f"dedup.policy: {dedup_policy}")
    if conflicts is not None:
        add("duplicates", "label conflicts (near-duplicate pairs under two labels)", len(conflicts),
            f"{len(set(conflicts['item_a']) | set(conflicts['item_b']))} items, {conflicts['group'].nunique()} groups; "
            f"dedup.conflicts: {conflicts_policy}")
    if policies is not None:
        for policy in policies.itertuples():
            add("duplicates", f"test items with a near-duplicate on the training side under policy {policy.policy}",
                int(policy.test_items_with_copy),
                f"of {policy.test_items} test items; {policy.items_dropped} items dropped, "
                f"{policy.patients_grouped} patients grouped" + (" (configured)" if policy.policy == dedup_policy else ""))
    marked = marks["marked"].astype(str).str.lower() == "true"
    for row in marks_per_class(marks).itertuples():
        kinds = ", ".join(f"{kind} {getattr(row, kind)}" for kind in KINDS if getattr(row, kind))
        add("marks", f"marked frames, class {row.label}", int(row.marked),
            f"of {row.frames} ({row.marked_share:.1%}){': ' + kinds if kinds else ''}")
    items = marks.groupby("item_id")["marked"].apply(lambda m: (m.astype(str).str.lower() == "true").all())
    thin = marked & (marks["count"] > marks["n_colour"])
    effect = {"report": "frames listed, training unchanged",
              "inpaint": f"{int(thin.sum())} frames inpainted before denoise (colour frames are not: "
                         f"{int((marks['n_colour'] > 0).sum())})",
              "drop": f"{int(marked.sum())} frames left out, {int(items.sum())} items entirely"}
    for policy in POLICIES:
        add("marks", f"audit.marks: {policy}" + (" (configured)" if policy == marks_policy else ""), "",
            effect[policy])
    for row in shortcuts.itertuples():
        value = "" if not np.isfinite(row.auc) else f"{row.auc:.3f} ({row.ci_low:.3f}-{row.ci_high:.3f})"
        add("shortcut probe", f"AUC from {row.group} ({row.features} features, {row.frames} frames)", value,
            row.warning if isinstance(row.warning, str) and row.warning else
            (f"top: {row.top_features}" if isinstance(row.top_features, str) else ""))
    return pd.DataFrame(rows, columns=["section", "finding", "value", "note"])


def planted_stills(sheet: pd.DataFrame, folder, plants: Sequence[Sequence[str]], size: int, seed: int
                   ) -> tuple[np.ndarray, pd.DataFrame, list[list[tuple[str, np.ndarray]]]]:
    """The demo stills of ``sheet`` (paths relative to ``folder``), the k-th with the marks
    ``plants[k]`` burned in, ingested as the workflow does at ``size`` px: frames (N, size, size),
    their frame table (with the colour share ingest records) and, per frame, each planted mark's
    mask in ingest geometry (widened by a pixel first: nearest-neighbour shrinking would skip
    1-pixel strokes)."""
    from pathlib import Path

    from sonoflow.demo import fan_geometry
    from sonoflow.frames import IngestSettings, crop_resize, detect_scan_area, ingest_item

    folder, rng = Path(folder), np.random.default_rng(seed)
    settings = IngestSettings(size=size, max_frames=1)
    frames, rows, truth = [], [], []
    for k, row in enumerate(sheet.itertuples()):
        image = cv2.imread(str(folder / row.path), cv2.IMREAD_GRAYSCALE)
        marked, marks = plant_marks(image, fan_geometry(*image.shape)[0], plants[k], rng)
        path = folder / f"planted_{k}.png"
        cv2.imwrite(str(path), marked)
        item = ingest_item(path, settings)
        area, bbox = detect_scan_area([cv2.cvtColor(marked, cv2.COLOR_BGR2GRAY) if marked.ndim == 3 else marked])
        truth.append([(kind, crop_resize(cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)), bbox, area,
                                         settings, is_mask=True).astype(bool)) for kind, mask in marks])
        frames.append(item.frames[0])
        rows.append({"shard": "00", "row": k, "item_id": row.item_id, "patient_id": row.patient_id,
                     "label": row.label, "split": "", "colour": item.colour[0]})
    return np.stack(frames), pd.DataFrame(rows), truth
