"""Stage 1, ingest: sampled, de-duplicated, scan-area-cropped, fixed-size frames of every item.

One item is decoded once (``media.iter_frames`` with a ``keep`` predicate planned from the
settings); its scan area is detected once from the frames it kept; every kept frame (and the
lesion mask of a still image) is cropped to that area and resized to ``size x size`` uint8.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np
import pandas as pd

from sonoflow.io import atomic_dir, save_csv, save_npy
from sonoflow.media import INTENSITY_MODES, MediaError, iter_frames, media_kind, read_image, scanner_tags
from sonoflow.settings import Settings

log = logging.getLogger("sonoflow.frames")

RESIZE_MODES = ("pad", "stretch")
FRAME_COLUMNS = [
    "row", "item_id", "patient_id", "label", "split", "frame_index", "time_s", "has_mask",
    "source_height", "source_width", "crop_y0", "crop_y1", "crop_x0", "crop_x1", "colour", "scanner",
]
BBox = tuple[int, int, int, int]  # y0, y1, x0, x1 (end-exclusive)

# Near-duplicates are judged on small thumbnails: cheap, and blind to speckle-level noise.
# The threshold is a mean absolute difference over the thumbnail's content (non-black) pixels.
THUMBNAIL_SIZE = 32
# Scan-area detection works on copies shrunk by a whole factor to a longer side of 256-511
# pixels (speed, and thin text strokes average away), of at most this many frames.
DETECT_SIZE = 256
DETECT_FRAMES = 32
# Grey levels (0-255) above the background (the image's darkest percentile, 0 for true black)
# at which a pixel of the brightest-over-time image counts as content: an export with lifted
# blacks keeps its scan area.
CONTENT_LEVEL = 5
BACKGROUND_PERCENTILE = 1
# Temporal standard deviation (grey levels) above which a pixel counts as moving.
MOTION_LEVEL = 1.0
# Motion is only trusted as a hint when this share of the frame moves (frozen clips have none).
MIN_MOVING_SHARE = 0.05
# Components smaller than this share of the largest are UI (logos, patches), not scan area.
MIN_PART_SHARE = 0.2
# An area smaller than this share of the frame is a failed detection: keep the full frame.
MIN_AREA_SHARE = 0.1


@dataclass(frozen=True)
class IngestSettings(Settings):
    SECTION = "ingest"
    # Numbers may arrive as strings from --config on the command line; crop stays as given,
    # since bool("false") would be True.
    CASTS = {"size": int, "step": int, "max_frames": int, "previews": int, "dedup_threshold": float, "fps": float}

    size: int = 128
    resize: str = "pad"
    step: int = 1
    fps: float | None = None
    max_frames: int = 32
    dedup_threshold: float = 2.0
    crop: bool = True
    previews: int = 2
    intensity: str = "bit_depth"  # 16-bit data: bit_depth (BitsStored for DICOM) | per_image (min-max)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"ingest size must be >= 1, got {self.size}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"ingest resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.step < 1:
            raise ValueError(f"ingest step must be >= 1, got {self.step}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"ingest fps must be > 0 or null, got {self.fps}")
        if self.max_frames < 1:
            raise ValueError(f"ingest max_frames must be >= 1, got {self.max_frames}")
        if self.dedup_threshold < 0:
            raise ValueError(f"ingest dedup_threshold must be >= 0, got {self.dedup_threshold}")
        if self.previews < 0:
            raise ValueError(f"ingest previews must be >= 0, got {self.previews}")
        if self.intensity not in INTENSITY_MODES:
            raise ValueError(f"ingest intensity must be one of {INTENSITY_MODES}, got {self.intensity!r}")
        if not isinstance(self.crop, bool):
            raise ValueError(f"ingest crop must be true or false, got {self.crop!r}")


# --- Sampling ---------------------------------------------------------------------------------


def _sampling_rule(settings: IngestSettings, source_fps: float) -> Callable:
    """Which frame indices pass the step / fps rule; works on an int and on an index array."""
    if settings.fps and source_fps > 0:
        ratio = settings.fps / source_fps
        # The first frame of every 1/fps-second bin; every frame when the clip is slower.
        return lambda i: (i == 0) | (np.floor(i * ratio + 1e-9) != np.floor((i - 1) * ratio + 1e-9))
    return lambda i: i % settings.step == 0


def frame_selector(settings: IngestSettings, n_frames: int, source_fps: float) -> Callable[[int, float], bool]:
    """The ``keep(index, time_s)`` predicate for ``media.iter_frames``.

    Frames pass the step rule, or the fps rule when both the settings and the source give an fps.
    When more than ``max_frames`` would pass and the container's frame count is known, the kept
    ones are spread evenly over the clip; otherwise the first ``max_frames`` that pass are kept.
    Must be called once per decoded frame, in order.
    """
    passes = _sampling_rule(settings, source_fps)
    if n_frames > 0:
        indices = np.arange(n_frames)
        planned = indices[passes(indices)]
        if len(planned) > settings.max_frames:
            spread = np.round(np.linspace(0, len(planned) - 1, settings.max_frames)).astype(int)
            chosen = frozenset(planned[spread].tolist())
            return lambda index, time_s: index in chosen
    kept = 0

    def keep_first(index: int, time_s: float) -> bool:
        nonlocal kept
        if kept >= settings.max_frames or not passes(index):
            return False
        kept += 1
        return True

    return keep_first


def _source_length(path: str | os.PathLike, kind: str) -> tuple[int, float]:
    """(frame count, fps) from the container header, 0 where unknown; never decodes pixels."""
    if kind == "image":
        return 1, 0.0
    if kind == "dicom":
        import pydicom

        try:
            header = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - any failure means "unreadable"
            raise MediaError(f"cannot read DICOM {path}: {exc}") from exc
        return int(getattr(header, "NumberOfFrames", 1) or 1), 0.0
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(f"cannot open video {path} (corrupt or unsupported codec)")
        n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    return max(n_frames, 0), fps if np.isfinite(fps) and fps > 0 else 0.0


def known_length(n_frames, fps) -> tuple[int, float]:
    """A probed (frame count, fps) as ``_source_length`` gives them: counts below 0 and unknown or
    non-finite rates as 0."""
    n_frames = int(n_frames) if n_frames is not None and np.isfinite(float(n_frames)) else 0
    fps = float(fps) if fps is not None else 0.0
    return max(n_frames, 0), fps if np.isfinite(fps) and fps > 0 else 0.0


def shrink_by(image: np.ndarray, factor_y: int, factor_x: int) -> np.ndarray:
    """Block-mean downscale by whole factors (OpenCV's fast area path; several times faster
    than a fractional area resize). A remainder of fewer than a factor's rows/columns at the
    bottom/right is dropped."""
    height, width = image.shape[0] // factor_y, image.shape[1] // factor_x
    block = image[: height * factor_y, : width * factor_x]
    return cv2.resize(block, (width, height), interpolation=cv2.INTER_AREA)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    return shrink_by(frame, max(1, frame.shape[0] // THUMBNAIL_SIZE), max(1, frame.shape[1] // THUMBNAIL_SIZE))


# A clip that decodes fewer than this share of the frames its header promises is reported.
SHORT_DECODE_SHARE = 0.9


def read_item_frames(
    path: str | os.PathLike, settings: IngestSettings, colour: list | None = None,
    length: tuple[int, float] | None = None,
) -> tuple[list[int], list[float], list[np.ndarray]]:
    """Decode one item: indices, times and gray frames that sampling and de-duplication keep.

    Sampling is planned over the header's frame count, which is what a clip holds unless it is
    damaged (cut short) or its container only estimates the count. Decoding counts the frames it
    really gets; when that count would have chosen other frames, the item is decoded once more
    with the plan made over the decodable count, and a clip far shorter than its header says is
    reported in the ingest log with both counts. ``colour``, when given, receives the colour mask
    of each kept frame (``media.colour_mask``). ``length``: the header's (frame count, fps) as the
    sheet check probed them (``media.probe``), so that the header is read once per run; without it
    the header is read here.
    """
    kind = media_kind(path)
    n_frames, source_fps = _source_length(path, kind) if length is None else known_length(*length)
    kept_colour: list | None = [] if colour is not None else None
    result, decoded = _read_planned(path, settings, n_frames, source_fps, kept_colour)
    # Stills are one frame; a DICOM's frames are all decoded at once (or it fails): clips only.
    if kind == "video" and n_frames > 0 and decoded != n_frames:
        if decoded < SHORT_DECODE_SHARE * n_frames:
            log.warning("%s: the header promises %d frames but only %d decode (damaged or cut short?); "
                        "frames are sampled from the %d that decode", path, n_frames, decoded, decoded)
        if _planned(settings, decoded, source_fps) != _planned(settings, n_frames, source_fps) & set(range(decoded)):
            kept_colour = [] if colour is not None else None
            result, _ = _read_planned(path, settings, decoded, source_fps, kept_colour)
    if colour is not None:
        colour.extend(kept_colour)
    return result


def _planned(settings: IngestSettings, n_frames: int, source_fps: float) -> set[int]:
    """The frame indices a plan over ``n_frames`` keeps."""
    keep = frame_selector(settings, n_frames, source_fps)
    return {index for index in range(n_frames) if keep(index, 0.0)}


def _read_planned(path, settings: IngestSettings, n_frames: int, source_fps: float, colour: list | None = None):
    """One decoding pass with the plan made for ``n_frames``; also returns how many frames decoded.
    ``colour``, when given, receives the colour mask of each kept frame."""
    plan = frame_selector(settings, n_frames, source_fps)
    seen = 0

    def keep(index: int, time_s: float) -> bool:  # asked once per decoded frame, in order
        nonlocal seen
        seen = index + 1
        return plan(index, time_s)

    indices: list[int] = []
    times: list[float] = []
    frames: list[np.ndarray] = []
    last_thumbnail: np.ndarray | None = None
    decoded_colour: list[np.ndarray] | None = [] if colour is not None else None
    for index, time_s, frame in iter_frames(path, keep, settings.intensity, decoded_colour):
        if frames and frame.shape != frames[0].shape:
            raise MediaError(f"{path}: frame {index} is {frame.shape}, the first frame {frames[0].shape}")
        if settings.dedup_threshold > 0:
            thumbnail = _thumbnail(frame)
            if last_thumbnail is not None:
                # Averaged over content pixels only: a black border must not dilute real motion.
                content = max(int(np.count_nonzero((thumbnail > CONTENT_LEVEL) | (last_thumbnail > CONTENT_LEVEL))), 1)
                difference = cv2.norm(thumbnail, last_thumbnail, cv2.NORM_L1) / content
                if difference < settings.dedup_threshold:
                    continue
            last_thumbnail = thumbnail
        if colour is not None:
            colour.append(decoded_colour[-1])
        indices.append(index)
        times.append(time_s)
        frames.append(frame)
    return (indices, times, frames), seen


# --- Scan area --------------------------------------------------------------------------------


def _odd(value: float) -> int:
    return max(int(round(value)) | 1, 3)


def detect_scan_area(frames: list[np.ndarray]) -> tuple[np.ndarray, BBox]:
    """The scan sector/rectangle of an item's frames: (bool mask HxW, bbox y0, y1, x0, x1).

    Content is what is ever brighter than the black background; in a clip with motion, pixels
    that never change are burned-in UI and are dropped. Thin structures (text, rulers, ticks)
    are removed by a morphological opening; the large parts that remain (one scan area may be
    split by an anechoic region spanning its width) are joined by their convex hull — sectors,
    fans and rectangles are convex. Falls back to the full frame when nothing sensible is found.
    """
    height, width = frames[0].shape
    full_frame = np.ones((height, width), bool), (0, height, 0, width)
    factor = max(1, max(height, width) // DETECT_SIZE)
    scale = 1.0 / factor
    # Enough frames to see what moves; more only cost time.
    chosen = np.unique(np.round(np.linspace(0, len(frames) - 1, min(len(frames), DETECT_FRAMES))).astype(int))
    small = np.stack([shrink_by(frames[i], factor, factor) for i in chosen])

    brightest = cv2.GaussianBlur(small.max(axis=0), (5, 5), 0)
    content = brightest > np.percentile(brightest, BACKGROUND_PERCENTILE) + CONTENT_LEVEL
    if len(small) >= 3:
        moving = small.std(axis=0, dtype=np.float32) > MOTION_LEVEL
        if moving.mean() > MIN_MOVING_SHARE:
            content &= cv2.dilate(moving.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(0.03 * min(small.shape[1:])),) * 2)
    content = cv2.morphologyEx(content.view(np.uint8), cv2.MORPH_OPEN, kernel)
    content = cv2.morphologyEx(content, cv2.MORPH_CLOSE, kernel)
    # The blur above spread content about one pixel outwards; take it back.
    content = cv2.erode(content, np.ones((3, 3), np.uint8))

    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(content, connectivity=8)
    if n_labels < 2:
        return full_frame
    areas = stats[1:, cv2.CC_STAT_AREA]
    parts = 1 + np.flatnonzero(areas >= MIN_PART_SHARE * areas.max())
    ys, xs = np.nonzero(np.isin(labels, parts))
    hull = cv2.convexHull(np.column_stack([xs, ys]).astype(np.int32))
    # Hull corners back to full resolution, on pixel edges so the full-size mask covers them.
    hull_full = np.round((hull.reshape(-1, 2) + [[0.5, 0.5]]) / scale - 0.5).astype(np.int32)
    area = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(area, hull_full, 1)
    if area.sum() < MIN_AREA_SHARE * height * width:
        return full_frame
    rows, cols = np.flatnonzero(area.any(axis=1)), np.flatnonzero(area.any(axis=0))
    return area.astype(bool), (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


# --- Geometry ---------------------------------------------------------------------------------


def fitted_shape(height: int, width: int, settings: IngestSettings) -> tuple[int, int]:
    """Size of a ``height x width`` crop inside the ``size x size`` output (before letterboxing)."""
    if settings.resize == "stretch":
        return settings.size, settings.size
    scale = settings.size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def crop_resize(
    image: np.ndarray, bbox: BBox, area_mask: np.ndarray, settings: IngestSettings, is_mask: bool = False
) -> np.ndarray:
    """Crop to ``bbox``, zero what lies outside the area, and fit into ``size x size``.

    ``pad`` keeps the aspect ratio and letterboxes (centred) with zeros; ``stretch`` resizes.
    Masks take the same geometry with centre-aligned nearest-neighbour sampling, so they stay
    0/1 and line up with the image.
    """
    y0, y1, x0, x1 = bbox
    crop = image[y0:y1, x0:x1]
    inside = area_mask[y0:y1, x0:x1]
    if not inside.all():
        crop = cv2.bitwise_and(crop, crop, mask=inside.view(np.uint8))
    height, width = crop.shape
    target_h, target_w = fitted_shape(height, width, settings)
    # Shrinking mostly by a whole factor takes OpenCV's fast area path; zero rows/columns at the
    # bottom/right make the crop divisible by it. Masks get the same padding, so the same geometry.
    factor = max(1, int(min(height / target_h, width / target_w)))
    if factor > 1:
        pad_y, pad_x = -height % factor, -width % factor
        crop = cv2.copyMakeBorder(crop, 0, pad_y, 0, pad_x, cv2.BORDER_CONSTANT, value=0)
        target_h, target_w = fitted_shape(height + pad_y, width + pad_x, settings)
    if is_mask:
        resized = cv2.resize(crop, (target_w, target_h), interpolation=cv2.INTER_NEAREST_EXACT)
    elif factor > 1:
        resized = cv2.resize(shrink_by(crop, factor, factor), (target_w, target_h), interpolation=cv2.INTER_AREA)
    else:
        resized = cv2.resize(crop, (target_w, target_h), interpolation=cv2.INTER_LINEAR)
    if (target_h, target_w) == (settings.size, settings.size):
        return resized
    out = np.zeros((settings.size, settings.size), image.dtype)
    top, left = (settings.size - target_h) // 2, (settings.size - target_w) // 2
    out[top : top + target_h, left : left + target_w] = resized
    return out


# --- Items and shards -------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestedItem:
    frames: np.ndarray  # (k, size, size) uint8
    masks: np.ndarray | None  # (k, size, size) uint8 0/1; None when the item has no mask
    frame_indices: list[int]
    times: list[float]
    source_shape: tuple[int, int]  # height, width
    bbox: BBox
    colour: list[float] | None = None  # per frame: share of the scan area in colour (before grayscale)
    scanner: str = ""  # the device named in the file's header (DICOM, EXIF), "" when none


def mask_paths(value: object) -> list[str]:
    """The sample sheet's ``mask`` field: empty/NaN, one path, or several separated by ';'."""
    if value is None or pd.isna(value):
        return []
    return [part.strip() for part in str(value).split(";") if part.strip()]


def read_mask(paths: list[str], shape: tuple[int, int]) -> np.ndarray:
    """Union of binary masks as uint8 0/1: >127 is lesion, or >0 for masks stored as 0/1."""
    union = np.zeros(shape, bool)
    for path in paths:
        mask = read_image(path, "per_image")  # binary: any two levels (0/1, 0/255, 0/65535) map to 0/255
        if mask.shape != shape:
            raise MediaError(
                f"mask {path} is {mask.shape[1]}x{mask.shape[0]} pixels but its image is {shape[1]}x{shape[0]}"
            )
        union |= mask > (0 if mask.max() <= 1 else 127)
    return union.view(np.uint8)


def ingest_item(path: str | os.PathLike, settings: IngestSettings, masks: list[str] | None = None,
                length: tuple[int, float] | None = None) -> IngestedItem:
    """Frames (and the lesion mask of a still image) of one item, cropped and resized."""
    colour: list[np.ndarray] = []
    indices, times, frames = read_item_frames(path, settings, colour, length)
    if not frames:
        raise MediaError(f"{path} yielded no frames")
    if masks and (media_kind(path) == "video" or len(frames) != 1):
        raise MediaError(f"{path}: lesion masks are only supported for still images")
    source_shape = frames[0].shape
    if settings.crop:
        area, bbox = detect_scan_area(frames)
    else:
        area, bbox = np.ones(source_shape, bool), (0, source_shape[0], 0, source_shape[1])
    out = np.stack([crop_resize(frame, bbox, area, settings) for frame in frames])
    out_masks = None
    if masks:
        out_masks = crop_resize(read_mask(masks, source_shape), bbox, area, settings, is_mask=True)[None]
    colour_share = [round(float(np.count_nonzero(c & area)) / max(int(np.count_nonzero(area)), 1), 5) for c in colour]
    return IngestedItem(out, out_masks, indices, times, source_shape, bbox, colour_share, scanner_tags(path))


def preview_image(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """A frame for people: alone, or beside a copy with the lesion mask outlined in the ground
    truth's colour (sonoflow.figures.GROUND_TRUTH), smoothed."""
    from sonoflow.figures import GROUND_TRUTH, bgr

    gray = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if mask is None:
        return gray
    outlined = gray.copy()
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    smooth = [cv2.approxPolyDP(contour, 1.0, True) for contour in contours]
    cv2.drawContours(outlined, smooth, -1, bgr(GROUND_TRUTH), 1, lineType=cv2.LINE_AA)
    return np.hstack([gray, outlined])


def _safe_name(item_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", item_id)


def preview_folder(label: str, patient_id: str) -> str:
    """Where an item's previews lie under ``previews/``: ``<label>/<patient>``, so that people (and
    the report) browse them by class and patient. An unlabelled item (new cases) goes under
    ``unlabelled``."""
    return f"{_safe_name(str(label)) if label else 'unlabelled'}/{_safe_name(str(patient_id))}"


def _write_previews(folder: Path, row: Mapping, item: IngestedItem, count: int) -> None:
    n = len(item.frames)
    if count:
        label = row.get("label")
        folder = folder / preview_folder("" if label is None or pd.isna(label) else str(label), row["patient_id"])
        folder.mkdir(parents=True, exist_ok=True)
    for k, index in enumerate(np.unique(np.round(np.linspace(0, n - 1, min(count, n))).astype(int))):
        mask = item.masks[index] if item.masks is not None else None
        path = folder / f"{_safe_name(row['item_id'])}_{k}.png"
        if not cv2.imwrite(str(path), preview_image(item.frames[index], mask)):
            raise OSError(f"cannot write preview {path}")


def _sorted_items(rows: pd.DataFrame) -> list[dict]:
    """The shard's rows as records in item_id order (an empty frame may have no columns)."""
    if rows.empty:
        return []
    rows = rows.assign(item_id=rows["item_id"].astype(str)).sort_values("item_id", kind="stable")
    duplicated = rows["item_id"][rows["item_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"duplicate item_id in shard: {', '.join(sorted(set(duplicated)))}")
    return rows.to_dict("records")


@dataclass(frozen=True)
class ShardOutputs:
    """Where ``ingest_shard`` writes one shard: ``frames`` (N, size, size) uint8 and ``masks``
    (N, size, size) uint8 0/1 arrays, the frame ``table`` (one row per frame; ``row`` indexes the
    arrays) and the ``previews`` folder (``<label>/<patient>/``)."""

    frames: Path
    masks: Path
    table: Path
    previews: Path

    def __init__(self, frames: str | os.PathLike, masks: str | os.PathLike, table: str | os.PathLike,
                 previews: str | os.PathLike):
        for name, path in (("frames", frames), ("masks", masks), ("table", table), ("previews", previews)):
            object.__setattr__(self, name, Path(path))

    @classmethod
    def in_folder(cls, folder: str | os.PathLike) -> "ShardOutputs":
        """The workflow's names in ``folder``: frames.npy, masks.npy, frames.csv, previews/."""
        folder = Path(folder)
        return cls(folder / "frames.npy", folder / "masks.npy", folder / "frames.csv", folder / "previews")


def ingest_shard(rows: pd.DataFrame, settings: IngestSettings, outputs: ShardOutputs | str | os.PathLike) -> pd.DataFrame:
    """Ingest the items of one shard to ``outputs`` (a folder: ``ShardOutputs.in_folder``'s
    names in it); return its frame table. Items are processed sorted by item_id; a failing item
    raises MediaError starting with its item_id.
    """
    if not isinstance(outputs, ShardOutputs):
        outputs = ShardOutputs.in_folder(outputs)
    for path in (outputs.frames, outputs.masks, outputs.table, outputs.previews):
        path.parent.mkdir(parents=True, exist_ok=True)
    items = _sorted_items(rows)
    frames: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    records: list[dict] = []
    # previews/ is swapped in whole; a folder left by a killed job is removed as this one starts.
    with atomic_dir(outputs.previews) as previews:
        for row in items:
            item_id = row["item_id"]
            try:
                probed = (row["n_frames"], row["fps"]) if "n_frames" in row and "fps" in row else None
                item = ingest_item(row["path"], settings, mask_paths(row.get("mask")), probed)
            except (MediaError, cv2.error, OSError) as exc:
                raise MediaError(f"{item_id}: {exc}") from exc
            split = row.get("split")
            for index, time_s, colour in zip(item.frame_indices, item.times, item.colour):
                records.append({
                    "row": len(records), "item_id": item_id, "patient_id": str(row["patient_id"]),
                    "label": str(row["label"]), "split": "" if pd.isna(split) else str(split),
                    "frame_index": index, "time_s": time_s, "has_mask": item.masks is not None,
                    "source_height": item.source_shape[0], "source_width": item.source_shape[1],
                    "crop_y0": item.bbox[0], "crop_y1": item.bbox[1], "crop_x0": item.bbox[2], "crop_x1": item.bbox[3],
                    "colour": colour, "scanner": item.scanner,
                })
            frames.append(item.frames)
            masks.append(item.masks if item.masks is not None else np.zeros_like(item.frames))
            _write_previews(previews, row, item, settings.previews)
        empty = np.zeros((0, settings.size, settings.size), np.uint8)
        save_npy(outputs.frames, np.concatenate(frames) if frames else empty)
        save_npy(outputs.masks, np.concatenate(masks) if masks else empty)
    table = pd.DataFrame.from_records(records, columns=FRAME_COLUMNS)
    # Written last: a complete table means complete arrays.
    save_csv(outputs.table, table)
    return table
