"""Reading ultrasound media: videos, DICOM files and still images.

``probe`` is the cheap check run on every item before any job starts (header plus, for videos,
the first frame). ``iter_frames`` decodes an item exactly once, yielding only the frames that the
sampling plan keeps, as 2-D uint8 grayscale arrays.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".gif", ".m4v", ".mkv", ".mpeg", ".mpg"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
SUPPORTED_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | DICOM_EXTENSIONS
# How data deeper than 8 bits becomes 0-255: by the bit depth it is stored with (BitsStored for
# DICOM), one gain for every image of a scanner; or per image (cine) from its own min to max.
INTENSITY_MODES = ("bit_depth", "per_image")
PIXEL_DATA_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class MediaError(ValueError):
    """A file that cannot be used as an item (unreadable, corrupt, empty, unsupported)."""


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # "video", "image" or "dicom"
    width: int
    height: int
    n_frames: int  # 1 for stills; a container estimate for videos (may be 0 when unknown)
    fps: float  # 0.0 for stills or when the container does not say

    def to_dict(self) -> dict:
        return asdict(self)


def media_kind(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in DICOM_EXTENSIONS:
        return "dicom"
    raise MediaError(
        f"unsupported file type {ext or '(no extension)'!r}; supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}"
    )


def _check_intensity(intensity: str) -> None:
    if intensity not in INTENSITY_MODES:
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}, got {intensity!r}")


def _min_max(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.float32)
    lo, hi = float(pixels.min()), float(pixels.max())
    return np.zeros(pixels.shape, np.uint8) if hi <= lo else ((pixels - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def scale_to_uint8(pixels: np.ndarray, intensity: str = "bit_depth", bits: int | None = None,
                   signed: bool | None = None) -> np.ndarray:
    """Deeper-than-8-bit data as uint8.

    ``bit_depth``: integers scaled by their stored bit depth (``bits``, default the dtype's), the
    lowest storable value to 0 and the highest to 255, so every image of one scanner gets one
    gain. ``per_image`` (and float data, which has no bit depth): from the array's own min to max.
    """
    _check_intensity(intensity)
    if pixels.dtype == np.uint8:
        return pixels
    if intensity == "per_image" or not np.issubdtype(pixels.dtype, np.integer):
        return _min_max(pixels)
    bits = int(bits or pixels.dtype.itemsize * 8)
    signed = np.issubdtype(pixels.dtype, np.signedinteger) if signed is None else signed
    lowest = -(2 ** (bits - 1)) if signed else 0
    values = (pixels.astype(np.float64) - lowest) * (255.0 / (2**bits - 1))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def to_gray_uint8(frame: np.ndarray, intensity: str = "bit_depth") -> np.ndarray:
    """Any decoded frame (gray, BGR, BGRA, 16-bit, float) to 2-D uint8 (see ``scale_to_uint8``)."""
    if frame.ndim == 3:
        if frame.shape[2] == 1:
            frame = frame[:, :, 0]
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
        else:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(scale_to_uint8(frame, intensity))


# A pixel is coloured when its channels spread by more than this (0-255): Doppler, coloured
# calipers and annotations; JPEG chroma noise on a gray scan stays well below it.
COLOUR_SPREAD = 40


def colour_mask(frame: np.ndarray) -> np.ndarray:
    """Coloured pixels of a decoded frame (before it goes to grayscale), as a 2-D bool array;
    all False for a gray frame."""
    if frame.ndim != 3 or frame.shape[2] < 3:
        return np.zeros(frame.shape[:2], bool)
    channels = frame[..., :3]
    if channels.dtype != np.uint8:
        channels = (channels.astype(np.float32) * (255.0 / max(float(channels.max()), 1.0))).astype(np.uint8)
    return (channels.max(axis=2) - channels.min(axis=2)) > COLOUR_SPREAD


def read_image(path: str | os.PathLike, intensity: str = "bit_depth", colour: list | None = None) -> np.ndarray:
    """A still image (or mask) as 2-D uint8 grayscale; 16-bit data scaled as ``intensity`` says;
    ``colour``, when given, receives the image's ``colour_mask`` (taken before the conversion)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        # OpenCV cannot read GIF stills; Pillow can.
        try:
            from PIL import Image

            with Image.open(path) as im:
                image = np.asarray(im.convert("L"))
        except Exception as exc:  # noqa: BLE001 - any failure means "unreadable"
            raise MediaError(f"cannot decode image {path}: {exc}") from exc
    if colour is not None:
        colour.append(colour_mask(image))
    return to_gray_uint8(image, intensity)


def _dicom_fps(ds) -> float:
    """Frame rate from the DICOM header (FrameTime in ms, else the cine or display rate)."""
    frame_time = float(getattr(ds, "FrameTime", 0) or 0)
    if frame_time > 0:
        return 1000.0 / frame_time
    return float(getattr(ds, "CineRate", 0) or getattr(ds, "RecommendedDisplayFrameRate", 0) or 0)


def scanner_tags(path: str | os.PathLike) -> str:
    """Which device made the file, from its header: DICOM Manufacturer and ManufacturerModelName,
    or a JPEG/TIFF's EXIF Make and Model; "" when the file says nothing (PNG, most videos). A
    label that follows the scanner is a shortcut (sonoflow.shortcuts's ``scanner`` group)."""
    kind = media_kind(path)
    try:
        if kind == "dicom":
            import pydicom

            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            parts = [getattr(ds, "Manufacturer", ""), getattr(ds, "ManufacturerModelName", "")]
        elif kind == "image" and Path(path).suffix.lower() in (".jpg", ".jpeg", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as image:
                exif = image.getexif()
            parts = [exif.get(0x010F, ""), exif.get(0x0110, "")]  # Make, Model
        else:
            return ""
    except Exception:  # noqa: BLE001 - a header we cannot read names no scanner; decoding reports real damage
        return ""
    return " ".join(str(part).strip().replace("\x00", "") for part in parts if str(part).strip()).strip()


def _dicom_pixels(path: str | os.PathLike, intensity: str = "bit_depth") -> tuple[np.ndarray, float]:
    """All frames as (N, H, W) uint8 or (N, H, W, 3) BGR, and the frame rate (0 if unknown).

    Deeper data is scaled by BitsStored (``bit_depth``), or over the whole cine from its min to
    its max (``per_image``): one scale for all frames, so brightness does not flicker."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        raise MediaError(f"cannot decode DICOM {path}: {exc}") from exc
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if n_frames == 1:
        pixels = pixels[None]
    if samples == 1 and pixels.ndim == 4:
        pixels = pixels[..., 0]
    bits = int(getattr(ds, "BitsStored", 0) or 0) or None
    pixels = scale_to_uint8(pixels, intensity, bits, signed=int(getattr(ds, "PixelRepresentation", 0) or 0) == 1)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        pixels = 255 - pixels  # MONOCHROME1 stores bright as low values
    # pydicom >= 3 already returns YBR colour data as RGB (the header still says YBR).
    if samples == 3:
        pixels = pixels[..., ::-1]  # RGB -> BGR for to_gray_uint8
    return pixels, _dicom_fps(ds)


def _check_dicom_pixel_data(ds, path, width: int, height: int, n_frames: int) -> None:
    """A DICOM must hold pixel data, and uncompressed pixel data must be all there (cheap: the
    element's length and the file's size, no decoding)."""
    tag = next((tag for tag in PIXEL_DATA_TAGS if tag in ds), None)
    if tag is None:
        raise MediaError(f"DICOM {path} has no pixel data (a header-only file, report or structured document?)")
    element = ds.get_item(tag, keep_deferred=True)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:  # encapsulated frames: only decoding tells
        return
    if getattr(element, "value", None) is None:  # deferred (large): its length, from the header
        length, start = int(element.length), getattr(element, "value_tell", None)
    else:
        length, start = len(element.value), None
    if length == 0:
        raise MediaError(f"DICOM {path} has empty pixel data")
    if start is not None and start + length > os.path.getsize(path):
        raise MediaError(f"DICOM {path} is truncated: its pixel data needs {length} bytes, "
                         f"the file holds {max(os.path.getsize(path) - start, 0)}")
    if tag == "PixelData":
        bits = int(getattr(ds, "BitsAllocated", 8) or 8)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        if str(getattr(ds, "PhotometricInterpretation", "")).endswith("_422"):
            samples = 2  # two chroma samples shared by each pair of pixels
        expected = (width * height * n_frames * samples * bits + 7) // 8
        if length < expected:
            raise MediaError(f"DICOM {path} has too little pixel data: {length} bytes for {n_frames} frame(s) of "
                             f"{width}x{height}x{samples} at {bits} bits ({expected} bytes)")


def probe(path: str | os.PathLike) -> MediaInfo:
    """Cheap validity check of one item; raises MediaError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"file not found: {path}")
    kind = media_kind(path)
    if kind == "image":
        from PIL import Image

        try:
            with Image.open(path) as im:
                width, height = im.size
                im.verify()  # checks structure and checksums without decoding pixels
        except Exception as exc:  # noqa: BLE001
            raise MediaError(f"cannot read image {path}: {exc}") from exc
        return MediaInfo("image", width, height, 1, 0.0)
    if kind == "dicom":
        import pydicom

        try:
            # Large values (the pixels) are skipped, not read: only their length is looked at.
            ds = pydicom.dcmread(str(path), defer_size="64 KB")
            width, height = int(ds.Columns), int(ds.Rows)
        except Exception as exc:  # noqa: BLE001
            raise MediaError(f"cannot read DICOM {path}: {exc}") from exc
        n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        _check_dicom_pixel_data(ds, path, width, height, n_frames)
        return MediaInfo("dicom", width, height, n_frames, _dicom_fps(ds))
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MediaError(f"cannot open video {path} (corrupt or unsupported codec)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise MediaError(f"video {path} has no decodable frame")
        n_frames = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        height, width = frame.shape[:2]
    finally:
        cap.release()
    return MediaInfo("video", int(width), int(height), n_frames, fps if np.isfinite(fps) else 0.0)


def iter_frames(
    path: str | os.PathLike, keep: Callable[[int, float], bool] | None = None, intensity: str = "bit_depth",
    colour: list | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode ``path`` once and yield ``(frame_index, time_s, gray_uint8)`` for kept frames.

    ``keep(index, time_s)`` decides per frame; frames it rejects are grabbed but not converted,
    which is the cheap path in OpenCV. Stills yield a single frame with index 0 and time 0.
    ``colour``, when given, receives each yielded frame's ``colour_mask`` before it is yielded.
    ``intensity`` says how data deeper than 8 bits is scaled (``INTENSITY_MODES``).
    """
    _check_intensity(intensity)
    keep = keep or (lambda index, time_s: True)
    kind = media_kind(path)
    if kind == "image":
        yield 0, 0.0, read_image(path, intensity, colour)
        return
    if kind == "dicom":
        pixels, fps = _dicom_pixels(path, intensity)
        for index, frame in enumerate(pixels):
            time_s = index / fps if fps else 0.0
            if keep(index, time_s):
                if colour is not None:
                    colour.append(colour_mask(np.asarray(frame)))
                yield index, time_s, to_gray_uint8(np.asarray(frame))
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MediaError(f"cannot open video {path} (corrupt or unsupported codec)")
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if np.isfinite(fps) and fps > 0 else 0.0
        index = 0
        kept_any = decoded_any = False
        while cap.grab():
            time_s = index / fps if fps else 0.0
            if keep(index, time_s):
                kept_any = True
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    decoded_any = True
                    if colour is not None:
                        colour.append(colour_mask(frame))
                    yield index, time_s, to_gray_uint8(frame)
            index += 1
        # keep() is asked exactly once per frame: it may count what it has accepted.
        if index == 0 or (kept_any and not decoded_any):
            raise MediaError(f"video {path} has no decodable frame")
    finally:
        cap.release()
