import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import write_dicom
from sonoflow.frames import (FRAME_COLUMNS, IngestSettings, ShardOutputs, crop_resize, detect_scan_area, frame_selector,
                             ingest_item, ingest_shard, preview_folder, read_item_frames)
from sonoflow.media import MediaError

SPECKLE_MAX = 200  # scan content stays at or below this; burned-in UI is drawn at 255
SCAN_GREY = 100  # the flat scan area around synthetic lesions (255)
HEIGHT, WIDTH = 240, 320


# --- Synthetic ultrasound -------------------------------------------------------------------


def fan_mask(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A 70-degree sector, apex at the top centre: the usual phased/curved-array scan area."""
    yy, xx = np.mgrid[:height, :width]
    apex_y, apex_x = 12, width / 2
    radius = np.hypot(yy - apex_y, xx - apex_x)
    angle = np.degrees(np.arctan2(xx - apex_x, yy - apex_y))
    return (radius < height - 24) & (np.abs(angle) < 35) & (yy >= apex_y)


def ui_overlay(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Burned-in text, a depth ruler and a logo, all outside the fan; one label sits inside
    the fan's bounding box (beside the apex), where only the area mask can remove it."""
    ui = np.zeros((height, width), np.uint8)
    cv2.putText(ui, "MI 0.9", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
    cv2.putText(ui, "12cm", (60, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 255, 1)
    for y in range(20, height - 20, 16):
        cv2.line(ui, (width - 14, y), (width - 6, y), 255, 1)
    cv2.circle(ui, (16, height - 16), 9, 255, -1)
    assert not (ui.astype(bool) & fan_mask(height, width)).any()
    return ui


def speckle(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(rng.rayleigh(55, shape) + 25, 25, SPECKLE_MAX).astype(np.uint8)


def fan_frames(n: int, seed: int = 0, ui: bool = True) -> np.ndarray:
    """n frames of a fan with fresh speckle and a bright structure sweeping across it (the probe
    moves), and static UI around it."""
    rng = np.random.default_rng(seed)
    frames = speckle(rng, (n, HEIGHT, WIDTH))
    for i, frame in enumerate(frames):
        cv2.circle(frame, (WIDTH // 2 + int(60 * np.cos(np.pi * i / max(n - 1, 1))), 150), 24, SPECKLE_MAX, -1)
    frames = np.where(fan_mask(), frames, 0).astype(np.uint8)
    if ui:
        frames = np.maximum(frames, ui_overlay())
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames.shape[2:0:-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def distinct_frames(n: int, seed: int = 0) -> np.ndarray:
    """Unrelated noise frames: no two are near-duplicates, even after a lossy codec."""
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 64), dtype=np.uint8)


def lesion_image(lesions: list[tuple[int, int, int]]) -> np.ndarray:
    """A flat rectangular scan area with UI around it and bright square lesions (y, x, side).

    Flat, so that a resized pixel is brighter than halfway exactly when a lesion covers half of it.
    """
    image = np.zeros((260, 400), np.uint8)
    image[40:220, 60:330] = SCAN_GREY
    cv2.putText(image, "L12-4 MSK", (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    for y in range(50, 210, 20):
        cv2.line(image, (350, y), (362, y), 255, 1)
    for y, x, side in lesions:
        image[y : y + side, x : x + side] = 255
    return image


def square_mask(shape: tuple[int, int], y: int, x: int, side: int, value: int = 255) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[y : y + side, x : x + side] = value
    return mask


def sheet(*rows: dict) -> pd.DataFrame:
    defaults = {"patient_id": "p", "label": "cyst", "mask": np.nan, "split": np.nan}
    return pd.DataFrame([{**defaults, **row} for row in rows])


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*")]


# --- Settings and sampling ------------------------------------------------------------------


def test_settings_from_config():
    settings = IngestSettings.from_config({"size": "64", "resize": "stretch", "fps": None, "max_frames": 8})
    assert settings == IngestSettings(size=64, resize="stretch", max_frames=8)
    assert IngestSettings.from_config({"fps": 5}).fps == 5.0
    assert IngestSettings.from_config(None) == IngestSettings()
    with pytest.raises(ValueError, match="unknown ingest setting.*sise"):
        IngestSettings.from_config({"sise": 64})
    with pytest.raises(ValueError, match="resize"):
        IngestSettings(resize="crop")
    with pytest.raises(ValueError, match="step"):
        IngestSettings(step=0)
    with pytest.raises(ValueError, match="crop"):
        IngestSettings.from_config({"crop": "false"})


def kept_by(settings: IngestSettings, n_frames: int, source_fps: float, decoded: int | None = None) -> list[int]:
    keep = frame_selector(settings, n_frames, source_fps)
    return [i for i in range(n_frames if decoded is None else decoded) if keep(i, i / source_fps if source_fps else 0.0)]


def test_sampling_by_step_and_fps():
    assert kept_by(IngestSettings(step=3, max_frames=100), 10, 25.0) == [0, 3, 6, 9]
    # A target fps wins over step when the source reports its fps ...
    assert kept_by(IngestSettings(step=3, fps=10.0, max_frames=100), 12, 30.0) == [0, 3, 6, 9]
    assert kept_by(IngestSettings(fps=2.0, max_frames=100), 26, 25.0) == [0, 13, 25]
    assert kept_by(IngestSettings(fps=60.0, max_frames=100), 5, 25.0) == [0, 1, 2, 3, 4]
    # ... and step applies when it does not (container without fps, DICOM).
    assert kept_by(IngestSettings(step=4, fps=10.0, max_frames=100), 10, 0.0) == [0, 4, 8]


def test_max_frames_spread_over_the_clip():
    assert kept_by(IngestSettings(max_frames=5), 101, 25.0) == [0, 25, 50, 75, 100]
    kept = kept_by(IngestSettings(step=2, max_frames=4), 100, 25.0)
    assert kept[0] == 0 and kept[-1] == 98 and all(i % 2 == 0 for i in kept) and len(kept) == 4
    # Unknown frame count: the first max_frames that pass.
    assert kept_by(IngestSettings(step=2, max_frames=3), 0, 25.0, decoded=50) == [0, 2, 4]
    # A container that under-counts still gives every frame when nothing had to be thinned.
    assert kept_by(IngestSettings(max_frames=10), 5, 25.0, decoded=8) == list(range(8))


def test_sampling_on_a_real_clip(tmp_path):
    path = write_video(tmp_path / "clip.mp4", distinct_frames(40), fps=20.0)
    no_dedup = {"dedup_threshold": 0.0, "max_frames": 100}
    assert read_item_frames(path, IngestSettings(step=10, **no_dedup))[0] == [0, 10, 20, 30]
    indices, times, frames = read_item_frames(path, IngestSettings(fps=5.0, **no_dedup))
    assert indices == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]
    assert times == pytest.approx([i / 20.0 for i in indices])
    assert read_item_frames(path, IngestSettings(max_frames=4, dedup_threshold=0.0))[0] == [0, 13, 26, 39]


def test_near_duplicates_are_dropped(tmp_path):
    distinct = distinct_frames(8)
    path = write_video(tmp_path / "frozen.mp4", np.repeat(distinct, 3, axis=0))  # each frame held 3x
    settings = IngestSettings(max_frames=100)
    indices, _, frames = read_item_frames(path, settings)
    assert indices == [0, 3, 6, 9, 12, 15, 18, 21]
    assert len(read_item_frames(path, IngestSettings(max_frames=100, dedup_threshold=0.0))[0]) == 24


# --- Scan area ------------------------------------------------------------------------------


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("n_frames", [1, 6])  # a still (no motion hint) and a clip
def test_scan_area_is_the_fan_without_the_ui(n_frames):
    frames = fan_frames(n_frames)
    area, bbox = detect_scan_area(list(frames))
    fan = fan_mask()
    assert area.dtype == bool and area.shape == fan.shape
    assert iou(area, fan) > 0.93
    assert not (area & ui_overlay().astype(bool)).any()
    rows, cols = np.flatnonzero(fan.any(axis=1)), np.flatnonzero(fan.any(axis=0))
    expected = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    assert np.abs(np.subtract(bbox, expected)).max() <= 4, (bbox, expected)


def test_scan_area_falls_back_to_the_full_frame():
    blank = [np.zeros((60, 80), np.uint8)] * 3
    speck = np.zeros((60, 80), np.uint8)
    speck[10:14, 10:14] = 200
    for frames in (blank, [speck]):
        area, bbox = detect_scan_area(frames)
        assert area.all() and bbox == (0, 60, 0, 80)


def test_crop_drops_text_beside_the_fan(tmp_path):
    image = write_png(tmp_path / "fan.png", fan_frames(1)[0])
    cropped = ingest_item(image, IngestSettings(size=96))
    assert cropped.frames.max() <= SPECKLE_MAX
    # The same image uncropped still shows the UI (the check above can fail).
    assert ingest_item(image, IngestSettings(size=96, crop=False)).frames.max() > 240


# --- Geometry and masks ---------------------------------------------------------------------


@pytest.mark.parametrize("resize", ["pad", "stretch"])
@pytest.mark.parametrize("size", [64, 300])  # shrinking and enlarging
def test_mask_lands_where_the_lesion_lands(tmp_path, resize, size):
    image = lesion_image([(100, 150, 40)])
    png = write_png(tmp_path / "img.png", image)
    mask = write_png(tmp_path / "img_mask.png", square_mask(image.shape, 100, 150, 40))
    item = ingest_item(png, IngestSettings(size=size, resize=resize), [str(mask)])
    frame, out_mask = item.frames[0], item.masks[0]
    assert set(np.unique(out_mask)) == {0, 1}
    lesion = frame > (SCAN_GREY + 255) / 2
    assert iou(lesion, out_mask.astype(bool)) > 0.9
    centre = lambda m: np.argwhere(m).mean(axis=0)  # noqa: E731
    assert np.abs(centre(lesion) - centre(out_mask)).max() < 0.5
    if resize == "pad":
        # The crop (about 180x270) is wider than tall: letterbox rows stay empty.
        assert not frame[: size // 10].any() and not frame[-(size // 10) :].any()


def test_crop_resize_geometry_directly():
    image = np.zeros((100, 200), np.uint8)
    image[20:60, 40:140] = 100  # the area: 40 x 100
    area = image > 0
    settings = IngestSettings(size=50)
    out = crop_resize(image, (20, 60, 40, 140), area, settings)
    # 40x100 fits as 20x50, centred: 15 zero rows above and below.
    assert out.shape == (50, 50) and not out[:15].any() and not out[35:].any() and (out[15:35] == 100).all()
    stretched = crop_resize(image, (20, 60, 40, 140), area, IngestSettings(size=50, resize="stretch"))
    assert (stretched == 100).all()
    # Outside the area but inside the bbox is zeroed.
    area[20:30, 40:60] = False
    assert not crop_resize(image, (20, 60, 40, 140), area, IngestSettings(size=100, resize="stretch"))[:20, :15].any()


def test_several_masks_are_united(tmp_path):
    image = lesion_image([(60, 80, 30), (150, 240, 30)])
    png = write_png(tmp_path / "img.png", image)
    first = write_png(tmp_path / "m1.png", square_mask(image.shape, 60, 80, 30))
    second = write_png(tmp_path / "m2.png", square_mask(image.shape, 150, 240, 30, value=1))  # a 0/1 mask
    settings = IngestSettings(size=128)
    both = ingest_item(png, settings, [str(first), str(second)]).masks[0]
    only_first = ingest_item(png, settings, [str(first)]).masks[0]
    only_second = ingest_item(png, settings, [str(second)]).masks[0]
    assert only_first.any() and only_second.any() and not (only_first & only_second).any()
    np.testing.assert_array_equal(both, only_first | only_second)


def test_mask_of_another_size_names_the_item(tmp_path):
    png = write_png(tmp_path / "img.png", lesion_image([]))
    mask = write_png(tmp_path / "m.png", np.zeros((100, 100), np.uint8))
    rows = sheet({"item_id": "busi_17", "path": str(png), "mask": f"{mask} ; "})
    with pytest.raises(MediaError, match=r"^busi_17: .*100x100 pixels but its image is 400x260"):
        ingest_shard(rows, IngestSettings(), tmp_path / "out")


def test_mask_on_a_video_is_refused(tmp_path):
    clip = write_video(tmp_path / "c.mp4", distinct_frames(3))
    mask = write_png(tmp_path / "m.png", np.zeros((48, 64), np.uint8))
    with pytest.raises(MediaError, match="^clip_1: .*only supported for still images"):
        ingest_shard(sheet({"item_id": "clip_1", "path": str(clip), "mask": str(mask)}), IngestSettings(), tmp_path / "o")


# --- Shards ---------------------------------------------------------------------------------


def test_ingest_shard_outputs(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", fan_frames(12, seed=1), fps=10.0)
    image = lesion_image([(100, 150, 40)])
    png = write_png(tmp_path / "img.png", image)
    mask = write_png(tmp_path / "img_mask.png", square_mask(image.shape, 100, 150, 40))
    dicom = write_dicom(tmp_path / "cine.dcm", fan_frames(5, seed=2))
    rows = sheet(
        {"item_id": "v1", "patient_id": "p2", "path": str(clip)},
        {"item_id": "d1", "patient_id": "p3", "path": str(dicom), "label": "normal", "split": "test"},
        {"item_id": "i1", "patient_id": "p1", "path": str(png), "mask": str(mask)},
    )
    settings = IngestSettings(size=64, max_frames=4, previews=2)
    out = tmp_path / "shard_00"
    table = ingest_shard(rows, settings, out)

    frames, masks = np.load(out / "frames.npy"), np.load(out / "masks.npy")
    assert list(table.columns) == FRAME_COLUMNS
    assert frames.shape == masks.shape == (len(table), 64, 64) and frames.dtype == masks.dtype == np.uint8
    assert table["row"].tolist() == list(range(len(table)))
    assert table["item_id"].tolist() == ["d1"] * 4 + ["i1"] + ["v1"] * 4  # sorted by item_id
    assert table["frame_index"].tolist() == [0, 1, 3, 4, 0, 0, 4, 7, 11]
    assert table["split"].tolist() == ["test"] * 4 + [""] * 5
    assert table["has_mask"].tolist() == [False] * 4 + [True] + [False] * 4
    assert masks[table["has_mask"].to_numpy()].any() and not masks[~table["has_mask"].to_numpy()].any()
    video = table[table["item_id"] == "v1"].iloc[0]
    assert (video["source_height"], video["source_width"]) == (HEIGHT, WIDTH)
    assert video["time_s"] == 0.0 and table["time_s"].iloc[-1] == pytest.approx(1.1)
    # The fan's crop, not the full frame (the UI lies outside the fan).
    assert video["crop_x0"] > 20 and video["crop_x1"] < WIDTH - 20
    on_disk = pd.read_csv(out / "frames.csv", keep_default_na=False)
    assert on_disk["item_id"].tolist() == table["item_id"].tolist()
    # Previews by class and patient (what the report groups them by).
    labels = dict(zip(rows["item_id"], rows["label"]))
    previews = sorted(str(p.relative_to(out / "previews")) for p in (out / "previews").rglob("*.png"))
    assert previews == sorted([f"{labels['d1']}/p3/d1_0.png", f"{labels['d1']}/p3/d1_1.png", f"{labels['i1']}/p1/i1_0.png",
                               f"{labels['v1']}/p2/v1_0.png", f"{labels['v1']}/p2/v1_1.png"])
    assert cv2.imread(str(out / "previews" / labels["i1"] / "p1" / "i1_0.png")).shape == (64, 128, 3)  # frame | outlined mask
    assert no_temp_files(out)

    # A rerun replaces the previews instead of piling up stale ones.
    ingest_shard(rows, IngestSettings(size=64, max_frames=4, previews=1), out)
    assert sorted(p.name for p in (out / "previews").rglob("*.png")) == ["d1_0.png", "i1_0.png", "v1_0.png"]


def test_ingest_shard_writes_to_the_paths_it_is_given(tmp_path):
    png = write_png(tmp_path / "img.png", lesion_image([(100, 150, 40)]))
    rows = sheet({"item_id": "i1", "patient_id": "p1", "path": str(png), "label": "cyst"})
    outputs = ShardOutputs(frames=tmp_path / "a" / "images.npy", masks=tmp_path / "b" / "lesions.npy",
                           table=tmp_path / "c" / "table.csv", previews=tmp_path / "d" / "shown")
    table = ingest_shard(rows, IngestSettings(size=32), outputs)
    assert np.load(outputs.frames).shape == np.load(outputs.masks).shape == (1, 32, 32)
    assert pd.read_csv(outputs.table)["item_id"].tolist() == table["item_id"].tolist() == ["i1"]
    assert [p.name for p in outputs.previews.rglob("*.png")] == ["i1_0.png"]
    assert ShardOutputs.in_folder(tmp_path / "shard_00") == ShardOutputs(
        tmp_path / "shard_00/frames.npy", tmp_path / "shard_00/masks.npy", tmp_path / "shard_00/frames.csv",
        tmp_path / "shard_00/previews")


def test_preview_folder_by_class_and_patient():
    assert preview_folder("cyst", "P 01/a") == "cyst/P_01_a"
    assert preview_folder("", "p1") == "unlabelled/p1"


@pytest.mark.parametrize("rows", [pd.DataFrame(), sheet()[0:0].assign(item_id=[], path=[])])
def test_empty_shard(tmp_path, rows):
    table = ingest_shard(rows, IngestSettings(size=32), tmp_path / "shard")
    assert table.empty and list(table.columns) == FRAME_COLUMNS
    assert np.load(tmp_path / "shard" / "frames.npy").shape == (0, 32, 32)
    assert np.load(tmp_path / "shard" / "masks.npy").shape == (0, 32, 32)
    assert list(pd.read_csv(tmp_path / "shard" / "frames.csv").columns) == FRAME_COLUMNS
    assert (tmp_path / "shard" / "previews").is_dir() and no_temp_files(tmp_path / "shard")


def test_corrupt_video_names_the_item_and_writes_nothing(tmp_path):
    good = write_video(tmp_path / "good.mp4", distinct_frames(4))
    corrupt = tmp_path / "x.mp4"
    corrupt.write_bytes(os.urandom(5000))
    rows = sheet({"item_id": "a_good", "path": str(good)}, {"item_id": "b_broken", "path": str(corrupt)})
    out = tmp_path / "shard"
    with pytest.raises(MediaError, match=r"^b_broken: cannot open video .*x\.mp4"):
        ingest_shard(rows, IngestSettings(), out)
    assert sorted(os.listdir(out)) == []  # no partial arrays, no temp files


def test_zero_frame_video_names_the_item(tmp_path):
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48)).release()
    with pytest.raises(MediaError, match="^v0: .*no decodable frame"):
        ingest_shard(sheet({"item_id": "v0", "path": str(empty)}), IngestSettings(), tmp_path / "shard")


# --- Damaged clips, deep data, killed jobs ----------------------------------------------------


def cut_clip(tmp_path: Path, n: int = 40) -> tuple[Path, int]:
    """An MJPG AVI cut in half: its header still promises ``n`` frames; returns it and how many decode."""
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for frame in distinct_frames(n):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    capture = cv2.VideoCapture(str(cut))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    decodable = 0
    while capture.grab():
        decodable += 1
    capture.release()
    assert 0 < decodable < 0.9 * n
    return cut, decodable


def test_a_clip_cut_short_is_sampled_over_the_frames_that_decode_and_logged(tmp_path, caplog, monkeypatch):
    import sonoflow.frames as frames_module
    from sonoflow.media import iter_frames

    cut, decodable = cut_clip(tmp_path)
    settings = IngestSettings(max_frames=4, dedup_threshold=0.0)
    with caplog.at_level("WARNING", logger="sonoflow.frames"):
        indices, _, frames = read_item_frames(cut, settings)
    # Spread over the decodable frames, as for an intact clip of that length: all 4 planned frames.
    assert indices == np.round(np.linspace(0, decodable - 1, 4)).astype(int).tolist() and len(frames) == 4
    assert f"the header promises 40 frames but only {decodable} decode" in caplog.text and str(cut) in caplog.text
    # An intact clip, a still and a DICOM cine decode once and say nothing.
    caplog.clear()
    clip = write_video(tmp_path / "ok.mp4", distinct_frames(12))
    calls = []
    monkeypatch.setattr(frames_module, "iter_frames", lambda *args: calls.append(args[0]) or iter_frames(*args))
    with caplog.at_level("WARNING", logger="sonoflow.frames"):
        assert read_item_frames(clip, settings)[0] == [0, 4, 7, 11]
        assert read_item_frames(write_png(tmp_path / "still.png", distinct_frames(1)[0]), settings)[0] == [0]
        assert read_item_frames(write_dicom(tmp_path / "cine.dcm", distinct_frames(6)), settings)[0] == [0, 2, 3, 5]
    assert caplog.text == ""
    assert [Path(path).name for path in calls] == ["ok.mp4", "still.png", "cine.dcm"], "one decoding pass each"


def test_16_bit_images_scaled_by_bit_depth_unless_configured_per_image(tmp_path):
    image = np.full((60, 80), 8, np.uint16)
    image[20:40, 30:50] = 255  # 8-255 of 65535: a dim 16-bit image
    cv2.imwrite(str(tmp_path / "deep.png"), image)
    flat = IngestSettings(size=32, crop=False, dedup_threshold=0.0)
    by_depth = ingest_item(tmp_path / "deep.png", flat).frames
    assert by_depth.max() == 1  # 255 / 65535 of white, not stretched to 255
    per_image = ingest_item(tmp_path / "deep.png", IngestSettings(size=32, crop=False, intensity="per_image")).frames
    assert per_image.max() == 255
    assert IngestSettings.from_config({"intensity": "per_image"}).intensity == "per_image"
    with pytest.raises(ValueError, match="intensity"):
        IngestSettings(intensity="auto")


def test_a_16_bit_mask_of_zeros_and_ones_still_marks_the_lesion(tmp_path):
    image = lesion_image([(100, 150, 40)])
    png = write_png(tmp_path / "img.png", image)
    mask = square_mask(image.shape, 100, 150, 40, value=1).astype(np.uint16)  # 0/1 in 16 bits
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    item = ingest_item(png, IngestSettings(size=64), [str(tmp_path / "mask.png")])
    assert item.masks.sum() > 0


def test_previews_left_by_a_killed_job_are_removed_by_the_next_run(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", distinct_frames(4))
    out = tmp_path / "shard_00"
    (out / ".previews.k1ll3d").mkdir(parents=True)  # what a SIGKILL mid-ingest leaves
    (out / ".previews.k1ll3d" / "a_0.png").write_bytes(b"half")
    (out / ".frames.npy.x1y2.npy").write_bytes(b"half")
    ingest_shard(sheet({"item_id": "a", "path": str(clip)}), IngestSettings(size=32), out)
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "frames.npy", "masks.npy", "previews"]


def test_ingest_reads_no_header_twice_and_uses_the_probed_dicom_frame_rate(tmp_path, monkeypatch):
    """The sheet check's probe (frame count, fps) travels with the rows: ingest does not read the
    header again, and a DICOM cine's frame rate (FrameTime) reaches ingest's fps sampling (its own
    header read had none: the two disagreed)."""
    import sonoflow.frames as frames_module
    from sonoflow.media import probe

    cine = write_dicom(tmp_path / "cine.dcm", distinct_frames(10)[:, :32, :32], frame_time_ms=100.0)
    clip = write_video(tmp_path / "clip.mp4", distinct_frames(12), fps=20.0)
    settings = IngestSettings(size=32, fps=5.0, crop=False, dedup_threshold=0)
    unprobed = {path: ingest_item(path, settings) for path in (cine, clip)}
    info = {path: probe(path) for path in (cine, clip)}
    assert (info[cine].n_frames, info[cine].fps) == (10, 10.0)

    def no_second_read(path, kind):
        raise AssertionError(f"header of {path} read again")

    monkeypatch.setattr(frames_module, "_source_length", no_second_read)
    probed = {path: ingest_item(path, settings, length=(info[path].n_frames, info[path].fps)) for path in (cine, clip)}
    # A clip: the same frames as from its own header read.
    assert probed[clip].frame_indices == unprobed[clip].frame_indices
    np.testing.assert_array_equal(probed[clip].frames, unprobed[clip].frames)
    # A cine at 10 fps sampled at 5 fps: every second frame, at its true times.
    assert probed[cine].frame_indices == [0, 2, 4, 6, 8]
    assert probed[cine].times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    # Through ingest_shard, as the workflow passes the rows.
    rows = pd.DataFrame([{"patient_id": "p1", "item_id": "cine", "path": str(cine), "label": "a", "mask": "",
                          "split": "", "n_frames": 10, "fps": 10.0}])
    table = ingest_shard(rows, settings, tmp_path / "shard_00")
    assert table["frame_index"].tolist() == [0, 2, 4, 6, 8]
