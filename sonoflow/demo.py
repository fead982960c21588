"""The built-in demo: synthetic B-mode ultrasound of four lesion classes, stills and clips.

Each frame is a fan-shaped scan sector on black: a smooth tissue echo map times multiplicative
Rayleigh speckle, attenuated with depth and log-compressed, with burned-in text, a depth ruler
and a logo outside the fan (which ingest must crop away). Classes differ the way the textbook
says they do:

- ``cyst``: anechoic, round, smooth border, posterior acoustic enhancement;
- ``hyperechoic_mass``: bright, well-defined ellipse;
- ``hypoechoic_mass``: dark, lobulated border, posterior acoustic shadowing;
- ``normal``: no lesion (empty mask).

Every patient has one label and a look of its own (gain, texture). Each patient's data comes
from a generator seeded by (seed, class, index within class), so adding patients never changes
the existing ones. Usage: ``python -m sonoflow.demo OUT_DIR [--patients-per-class N]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from sonoflow.io import atomic_path, save_csv
from sonoflow.settings import Settings

DEMO_CLASSES = ("cyst", "hyperechoic_mass", "hypoechoic_mass", "normal")
HALF_ANGLE = np.radians(38)  # half the opening of the fan
MARGIN = 24  # the tissue map is larger than the frame by this much, so the probe can drift


@dataclass(frozen=True)
class DemoSettings(Settings):
    """The demo's size, from the config's `demo:` section (rule demo_data). The defaults are
    config.yaml's (a test holds them equal; this module is not given a YAML reader: the demo
    runs in the ingest environment) and make_demo's."""

    SECTION = "demo"

    patients_per_class: int = 6
    images_per_patient: int = 2  # stills per patient
    clips_per_patient: int = 1
    frames_per_clip: int = 12
    seed: int = 0

    def make(self, out_dir: str | Path) -> pd.DataFrame:
        """The demo data set of these settings under ``out_dir`` (make_demo)."""
        return make_demo(out_dir, n_patients_per_class=self.patients_per_class,
                         images_per_patient=self.images_per_patient, clips_per_patient=self.clips_per_patient,
                         frames_per_clip=self.frames_per_clip, seed=self.seed)


@dataclass(frozen=True)
class Lesion:
    kind: str
    cy: float  # centre in tissue-map pixels
    cx: float
    ry: float
    rx: float
    angle: float  # radians
    lobes: np.ndarray  # amplitudes of border harmonics (irregular margins)
    phases: np.ndarray


def fan_geometry(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Inside-fan mask and normalised depth (0 at the apex arc, 1 at the far arc)."""
    apex_y, apex_x = -0.12 * height, width / 2
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot(y - apex_y, x - apex_x)
    theta = np.arctan2(x - apex_x, y - apex_y)
    r_near, r_far = 0.2 * height, 0.96 * height - apex_y
    inside = (radius > r_near) & (radius < r_far) & (np.abs(theta) < HALF_ANGLE)
    depth = np.clip((radius - r_near) / (r_far - r_near), 0, 1)
    return inside, depth


def tissue_map(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth echogenicity around 1: coarse texture plus a few horizontal tissue layers."""
    coarse = cv2.resize(rng.normal(0, 1, (height // 16 + 2, width // 16 + 2)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3)
    layers = np.zeros((height, 1), np.float32)
    for depth in rng.uniform(0.1, 0.9, 3):
        layers += 0.35 * np.exp(-((np.arange(height)[:, None] / height - depth) ** 2) / 0.0015)
    return np.clip(1 + 0.22 * coarse + 0.12 * fine + layers, 0.3, None)


def draw_lesion(rng: np.random.Generator, kind: str, height: int, width: int) -> Lesion:
    size = rng.uniform(0.09, 0.16) * height
    elongation = rng.uniform(0.75, 1.3)
    lobes = rng.uniform(0.08, 0.2, 3) if kind == "hypoechoic_mass" else np.zeros(3)
    return Lesion(kind, cy=rng.uniform(0.42, 0.62) * height, cx=rng.uniform(0.38, 0.62) * width,
                  ry=size, rx=size * elongation, angle=rng.uniform(-0.5, 0.5),
                  lobes=lobes, phases=rng.uniform(0, 2 * np.pi, 3))


def lesion_mask(lesion: Lesion, height: int, width: int) -> np.ndarray:
    """A soft (0..1) lesion region on the tissue map; irregular border for lobulated masses."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dy, dx = y - lesion.cy, x - lesion.cx
    cos, sin = np.cos(lesion.angle), np.sin(lesion.angle)
    u, v = (dx * cos + dy * sin) / lesion.rx, (-dx * sin + dy * cos) / lesion.ry
    radius, theta = np.hypot(u, v), np.arctan2(v, u)
    border = 1 + sum(a * np.sin((k + 3) * theta + p) for k, (a, p) in enumerate(zip(lesion.lobes, lesion.phases)))
    return np.clip((border - radius) * 6, 0, 1)


# Echogenicity inside the lesion, and the posterior effect below it (>1 enhancement, <1 shadow).
APPEARANCE = {"cyst": (0.06, 1.8), "hyperechoic_mass": (2.1, 1.0), "hypoechoic_mass": (0.38, 0.4)}


def apply_lesion(echo: np.ndarray, region: np.ndarray, kind: str, rng: np.random.Generator,
                 contrast: float = 1.0) -> np.ndarray:
    """The lesion's echogenicity and its posterior effect; ``contrast`` scales both towards the
    tissue's (0: the lesion is invisible, only its mask tells where it is)."""
    inside, posterior = APPEARANCE[kind]
    inside *= rng.uniform(0.85, 1.15)
    if contrast != 1.0:
        inside, posterior = 1 + contrast * (inside - 1), 1 + contrast * (posterior - 1)
    # Everything below the lesion along the beam (approximately vertical) gets the posterior effect.
    below = np.maximum.accumulate(region, axis=0) - region
    below = cv2.GaussianBlur(below, (0, 0), 2) * np.exp(-np.cumsum(below, axis=0) / (0.5 * echo.shape[0]))
    echo = echo * (1 + (posterior - 1) * below)
    return echo * (1 - region) + echo * inside * region


def render(echo: np.ndarray, inside_fan: np.ndarray, depth: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Speckle, attenuation and log compression of one frame of echogenicity."""
    height, width = echo.shape
    # Rayleigh speckle, slightly correlated (a speckle grain is larger than a pixel).
    speckle = rng.rayleigh(1.0, (height // 2 + 1, width // 2 + 1)).astype(np.float32)
    speckle = cv2.resize(speckle, (width, height), interpolation=cv2.INTER_LINEAR) / 1.2533
    intensity = echo * speckle * np.exp(-1.1 * depth) * gain
    image = np.log1p(6 * intensity) / np.log1p(6 * 3.0)
    return np.where(inside_fan, np.clip(image * 230, 0, 255), 0).astype(np.uint8)


def burn_in_overlay(image: np.ndarray, inside_fan: np.ndarray, frame_label: str) -> np.ndarray:
    """Scanner text, a depth ruler and a logo, all outside the fan (as real exports have)."""
    height, width = image.shape
    out = image.copy()
    cv2.putText(out, "SONO 7.5MHz", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, 255, 1, cv2.LINE_AA)
    cv2.putText(out, frame_label, (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.3, 220, 1, cv2.LINE_AA)
    for tick in range(int(0.15 * height), height - 4, max(height // 12, 4)):
        cv2.line(out, (width - 10, tick), (width - 4, tick), 255, 1)
    cv2.rectangle(out, (width - 26, 3), (width - 6, 13), 200, -1)
    # Never paint over the scan itself.
    return np.where(inside_fan, image, out)


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"could not write {path}")


def _write_clip(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"could not write video {path}")
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()


def patient_id(class_index: int, index_in_class: int, n_classes: int) -> str:
    # Interleaved numbering: a patient's id does not depend on how many patients a class has.
    return f"P{index_in_class * n_classes + class_index + 1:03d}"


def make_demo(
    out_dir: str | Path,
    *,
    n_patients_per_class: int = DemoSettings.patients_per_class,
    classes: Sequence[str] = DEMO_CLASSES,
    images_per_patient: int = DemoSettings.images_per_patient,
    clips_per_patient: int = DemoSettings.clips_per_patient,
    frames_per_clip: int = DemoSettings.frames_per_clip,
    fps: float = 10.0,
    height: int = 192,
    width: int = 256,
    seed: int = DemoSettings.seed,
    lesion_contrast: float = 1.0,
) -> pd.DataFrame:
    """Write the demo data set under ``out_dir`` (items/ and samples.csv); return the sheet.
    ``lesion_contrast`` below 1 makes lesions fainter (0: invisible, with masks still drawn; a
    variant in which only a crop's geometry could tell lesion from normal)."""
    unknown = sorted(set(classes) - set(DEMO_CLASSES))
    if unknown:
        raise ValueError(f"the demo cannot draw class(es) {unknown}; it knows {', '.join(DEMO_CLASSES)}")
    out_dir = Path(out_dir)
    inside_fan, depth = fan_geometry(height, width)
    big_h, big_w = height + 2 * MARGIN, width + 2 * MARGIN
    rows = []
    for index_in_class in range(n_patients_per_class):
        for label in classes:
            pid = patient_id(DEMO_CLASSES.index(label), index_in_class, len(DEMO_CLASSES))
            rng = np.random.default_rng([seed, DEMO_CLASSES.index(label), index_in_class])
            gain = rng.uniform(0.8, 1.2)
            folder = out_dir / "items" / pid

            def scene():
                echo = tissue_map(rng, big_h, big_w)
                if label == "normal":
                    return echo, np.zeros((big_h, big_w), np.float32)
                region = lesion_mask(draw_lesion(rng, label, big_h, big_w), big_h, big_w)
                return apply_lesion(echo, region, label, rng, lesion_contrast), region

            for number in range(1, images_per_patient + 1):
                echo, region = scene()
                oy, ox = rng.integers(0, 2 * MARGIN, 2)
                window = (slice(oy, oy + height), slice(ox, ox + width))
                image = burn_in_overlay(render(echo[window], inside_fan, depth, gain, rng), inside_fan, f"IMG {number}")
                mask = ((region[window] > 0.5) & inside_fan).astype(np.uint8) * 255
                item = f"{pid}_img{number}"
                _write_png(folder / f"{item}.png", image)
                _write_png(folder / f"{item}_mask.png", mask)
                rows.append([pid, item, f"items/{pid}/{item}.png", label, f"items/{pid}/{item}_mask.png", ""])
            for number in range(1, clips_per_patient + 1):
                echo, _ = scene()
                start = rng.uniform(0.25, 0.75, 2) * 2 * MARGIN
                drift = rng.uniform(-1, 1, 2) * MARGIN / max(frames_per_clip, 1)  # the probe slides slowly
                frames = []
                for t in range(frames_per_clip):
                    oy, ox = np.clip(np.round(start + t * drift), 0, 2 * MARGIN).astype(int)
                    frame = render(echo[oy : oy + height, ox : ox + width], inside_fan, depth, gain, rng)
                    frames.append(burn_in_overlay(frame, inside_fan, f"CLIP {number}"))
                item = f"{pid}_clip{number}"
                _write_clip(folder / f"{item}.mp4", frames, fps)
                rows.append([pid, item, f"items/{pid}/{item}.mp4", label, "", ""])
    sheet = pd.DataFrame(rows, columns=["patient_id", "item_id", "path", "label", "mask", "split"])
    sheet = sheet.sort_values(["patient_id", "item_id"], kind="stable").reset_index(drop=True)
    save_csv(out_dir / "samples.csv", sheet)
    return sheet


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the sonoflow synthetic ultrasound demo data set.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--patients-per-class", type=int, default=DemoSettings.patients_per_class)
    parser.add_argument("--seed", type=int, default=DemoSettings.seed)
    args = parser.parse_args(argv)
    sheet = make_demo(args.out_dir, n_patients_per_class=args.patients_per_class, seed=args.seed)
    print(f"{len(sheet)} items of {sheet['patient_id'].nunique()} patients in {args.out_dir}")


if __name__ == "__main__":
    main()
