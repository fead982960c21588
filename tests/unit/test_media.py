from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image

from conftest import write_dicom
from sonoflow.frames import IngestSettings, ingest_item
from sonoflow.media import MediaError, iter_frames, media_kind, probe, read_image


def distinct_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames of flat, well separated grey levels: they survive lossy codecs recognisably."""
    return np.stack([np.full((height, width), 20 + 20 * i, np.uint8) for i in range(n)])


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, frames.shape[2:0:-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_gif(path: Path, frames: np.ndarray) -> Path:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def test_media_kind_by_extension():
    assert media_kind("a/clip.MP4") == "video"
    assert media_kind("x.gif") == "video"
    assert media_kind("scan.dcm") == "dicom"
    assert media_kind("img.TIFF") == "image"
    with pytest.raises(MediaError, match="unsupported file type '.txt'"):
        media_kind("notes.txt")
    with pytest.raises(MediaError, match="no extension"):
        media_kind("README")


def test_probe_image_video_dicom(tmp_path):
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.zeros((30, 40), np.uint8))
    assert probe(png).to_dict() == {"kind": "image", "width": 40, "height": 30, "n_frames": 1, "fps": 0.0}

    video = probe(write_video(tmp_path / "v.mp4", distinct_frames(7), fps=12.0))
    assert (video.kind, video.width, video.height, video.n_frames) == ("video", 64, 48, 7)
    assert video.fps == pytest.approx(12.0)

    dicom = probe(write_dicom(tmp_path / "d.dcm", distinct_frames(3, 20, 24)))
    assert (dicom.kind, dicom.width, dicom.height, dicom.n_frames) == ("dicom", 24, 20, 3)


@pytest.mark.parametrize("name", ["x.mp4", "x.png", "x.dcm"])
def test_probe_rejects_corrupt_files(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(MediaError, match=str(path)):
        probe(path)


def test_probe_missing_and_unsupported(tmp_path):
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "nope.mp4")
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(MediaError, match="unsupported file type '.csv'"):
        probe(tmp_path / "table.csv")


def test_iter_frames_video_indices_times_and_pixels(tmp_path):
    frames = distinct_frames(6)
    path = write_video(tmp_path / "v.mp4", frames, fps=5.0)
    out = list(iter_frames(path))
    assert [index for index, _, _ in out] == list(range(6))
    assert [time_s for _, time_s, _ in out] == pytest.approx([i / 5.0 for i in range(6)])
    for (_, _, frame), original in zip(out, frames):
        assert frame.dtype == np.uint8 and frame.shape == (48, 64)
        assert abs(float(frame.mean()) - float(original.mean())) < 6  # codec rounding; levels are 20 apart


def test_iter_frames_asks_keep_once_per_frame_in_order(tmp_path):
    path = write_video(tmp_path / "v.mp4", distinct_frames(5))
    asked = []

    def keep(index, time_s):
        asked.append(index)
        return index % 2 == 0

    assert [index for index, _, _ in iter_frames(path, keep)] == [0, 2, 4]
    assert asked == [0, 1, 2, 3, 4]
    # Rejecting every frame of a good clip is not an error, and asks no more questions.
    asked.clear()
    assert list(iter_frames(path, lambda index, time_s: asked.append(index))) == []
    assert asked == [0, 1, 2, 3, 4]


def test_iter_frames_zero_frame_and_corrupt_video(tmp_path):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()
    with pytest.raises(MediaError, match="no decodable frame"):
        list(iter_frames(empty))
    corrupt = tmp_path / "x.mp4"
    corrupt.write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(MediaError, match="cannot open video"):
        list(iter_frames(corrupt))


def test_iter_frames_gif(tmp_path):
    frames = distinct_frames(4, 30, 40)
    out = list(iter_frames(write_gif(tmp_path / "a.gif", frames)))
    assert [index for index, _, _ in out] == [0, 1, 2, 3]
    np.testing.assert_allclose([f.mean() for _, _, f in out], frames.mean(axis=(1, 2)), atol=2)


def test_iter_frames_multiframe_dicom(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (4, 20, 24), dtype=np.uint8)
    path = write_dicom(tmp_path / "d.dcm", pixels)
    out = list(iter_frames(path, lambda index, time_s: index != 1))
    assert [index for index, _, _ in out] == [0, 2, 3]
    for (index, _, frame) in out:
        np.testing.assert_array_equal(frame, pixels[index])


def test_dicom_cine_times_one_brightness_scale_and_monochrome1(tmp_path):
    cine = np.stack([np.full((8, 8), level, np.uint16) for level in (1000, 2000, 3000)])
    cine[:, 0, 0] = 0  # a shared black point
    path = write_dicom(tmp_path / "cine.dcm", cine, frame_time_ms=50.0, bits_stored=12)
    assert probe(path).fps == pytest.approx(20.0)
    out = list(iter_frames(path))
    assert [round(t, 3) for _, t, _ in out] == [0.0, 0.05, 0.1]
    # By default scaled by BitsStored (12 bits: 4095 is white), the same gain for every file.
    assert [int(frame[4, 4]) for _, _, frame in out] == [round(level * 255 / 4095) for level in (1000, 2000, 3000)]
    # Per-image windowing on request: over the whole cine (not per frame), so brighter frames stay brighter.
    levels = [int(frame[4, 4]) for _, _, frame in iter_frames(path, intensity="per_image")]
    assert levels[0] < levels[1] < levels[2] == 255

    inverted = write_dicom(tmp_path / "m1.dcm", np.full((1, 4, 4), 10, np.uint8), photometric="MONOCHROME1")
    (_, _, frame), = list(iter_frames(inverted))
    assert frame.max() == 245  # MONOCHROME1: low values are bright


def test_iter_frames_ybr_dicom_is_converted_once(tmp_path):
    # pydicom >= 3 hands YBR data back as RGB already; converting again would shift the grey.
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((1, 8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 30
    path = write_dicom(tmp_path / "c.dcm", convert_color_space(rgb, "RGB", "YBR_FULL"), photometric="YBR_FULL")
    assert pydicom.dcmread(path).PhotometricInterpretation == "YBR_FULL"
    (_, _, frame), = list(iter_frames(path))
    expected = cv2.cvtColor(rgb[0], cv2.COLOR_RGB2GRAY)
    assert np.abs(frame.astype(int) - expected).max() <= 2


def test_iter_frames_still_image_and_read_image_formats(tmp_path):
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10)
    png = tmp_path / "g.png"
    cv2.imwrite(str(png), gray)
    assert [(i, t) for i, t, _ in iter_frames(png)] == [(0, 0.0)]
    np.testing.assert_array_equal(read_image(png), gray)

    colour = tmp_path / "c.png"
    cv2.imwrite(str(colour), np.dstack([gray, gray, gray]))
    np.testing.assert_array_equal(read_image(colour), gray)

    deep = tmp_path / "d.png"
    cv2.imwrite(str(deep), (gray.astype(np.uint16) * 1000))
    image = read_image(deep)  # by bit depth: 65535 is white
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.rint(gray.astype(float) * 1000 * 255 / 65535).astype(np.uint8))
    stretched = read_image(deep, "per_image")
    assert stretched.min() == 0 and stretched.max() == 255

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(MediaError, match="cannot decode image"):
        read_image(bad)


def test_16_bit_images_of_one_scanner_keep_one_gain(tmp_path):
    """Two 16-bit PNGs with values 8-255 and 8-1000: the same value maps to the same grey in both
    (min-max per image would stretch 8-255 to 0-255)."""
    dim, bright = np.linspace(8, 255, 40).astype(np.uint16), np.linspace(8, 1000, 40).astype(np.uint16)
    for name, row in (("dim.png", dim), ("bright.png", bright)):
        cv2.imwrite(str(tmp_path / name), np.tile(row, (10, 1)))
    a, b = read_image(tmp_path / "dim.png"), read_image(tmp_path / "bright.png")
    assert a[0, 0] == b[0, 0] == 0 and a.max() == round(255 * 255 / 65535) == 1
    assert b.max() == round(1000 * 255 / 65535)
    per_image = read_image(tmp_path / "dim.png", "per_image")
    assert per_image.min() == 0 and per_image.max() == 255
    with pytest.raises(ValueError, match="intensity"):
        list(iter_frames(tmp_path / "dim.png", intensity="auto"))


def test_signed_dicom_is_scaled_around_its_bit_depth(tmp_path):
    from sonoflow.media import scale_to_uint8

    values = np.array([[-2048, 0, 2047]], np.int16)
    assert scale_to_uint8(values, bits=12).tolist() == [[0, 128, 255]]
    assert scale_to_uint8(np.array([[0, 4095]], np.uint16), bits=12).tolist() == [[0, 255]]


def test_probe_rejects_dicom_without_or_with_short_pixel_data(tmp_path):
    pixels = distinct_frames(3, 200, 200)  # 120 000 bytes: more than the probe reads, so only its length is looked at
    header_only = write_dicom(tmp_path / "header.dcm", pixels, pixel_data=False)
    with pytest.raises(MediaError, match=r"header.dcm has no pixel data"):
        probe(header_only)
    full = write_dicom(tmp_path / "full.dcm", pixels).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(full[:-500])
    with pytest.raises(MediaError, match=r"cut.dcm is truncated: its pixel data needs 120000 bytes, the file holds 119500"):
        probe(tmp_path / "cut.dcm")
    short = write_dicom(tmp_path / "short.dcm", pixels[:1])
    ds = pydicom.dcmread(short)
    ds.NumberOfFrames = 3  # the header promises more frames than the pixel data holds
    ds.save_as(short)
    with pytest.raises(MediaError, match=r"short.dcm has too little pixel data: 40000 bytes for 3 frame"):
        probe(short)
    assert probe(tmp_path / "full.dcm").n_frames == 3


def test_probe_checks_small_read_pixel_data_and_passes_422_colour(tmp_path):
    """Pixel data small enough to be read with the header is checked too; YBR_FULL_422 holds two
    samples per pixel, not three, and is complete."""
    small = write_dicom(tmp_path / "small.dcm", distinct_frames(2, 8, 8))
    ds = pydicom.dcmread(small)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(small)
    with pytest.raises(MediaError, match=r"small.dcm has too little pixel data: 100 bytes for 2 frame"):
        probe(small)
    ybr = write_dicom(tmp_path / "ybr.dcm", np.zeros((1, 8, 8, 3), np.uint8), photometric="YBR_FULL_422")
    ds = pydicom.dcmread(ybr)
    ds.PixelData = bytes(8 * 8 * 2)
    ds.save_as(ybr)
    assert probe(ybr).n_frames == 1


def test_mpeg_program_streams_are_videos(tmp_path):
    """MPEG-1/2 program streams (.mpeg, .mpg: a fifth of the lung POCUS clips) decode like any clip."""
    frames = distinct_frames(6)
    for name in ("clip.mpeg", "clip.mpg"):
        path = write_video(tmp_path / name, frames, fps=25.0, fourcc="PIM1")
        assert media_kind(path) == "video"
        decoded = [frame for _, _, frame in iter_frames(path)]
        assert len(decoded) == 6
        assert all(abs(float(a.mean()) - float(b.mean())) < 6 for a, b in zip(decoded, frames))
        # The container's frame count is a poor estimate here (OpenCV says 1); ingest plans
        # its sample over the frames that decode, so a capped sample still spans the clip.
        item = ingest_item(path, IngestSettings(size=32, max_frames=3, crop=False, dedup_threshold=0))
        assert item.frame_indices[0] == 0 and item.frame_indices[-1] == 5 and len(item.frame_indices) == 3


def test_scanner_tags_come_from_dicom_and_exif_headers(tmp_path):
    import pydicom
    from PIL import Image

    from sonoflow.media import scanner_tags

    dicom = write_dicom(tmp_path / "a.dcm", np.zeros((1, 8, 8), np.uint8))
    assert scanner_tags(dicom) == ""
    ds = pydicom.dcmread(str(dicom))
    ds.Manufacturer, ds.ManufacturerModelName = "Acme Medical", "Sono 5"
    ds.save_as(str(dicom))
    assert scanner_tags(dicom) == "Acme Medical Sono 5"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Zeta", "Z1"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "b.jpg", exif=exif)
    assert scanner_tags(tmp_path / "b.jpg") == "Zeta Z1"
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((8, 8), np.uint8))
    assert scanner_tags(tmp_path / "c.png") == ""
    (tmp_path / "d.jpg").write_bytes(b"not a jpeg")
    assert scanner_tags(tmp_path / "d.jpg") == ""  # unreadable header: no scanner (decoding reports the damage)
