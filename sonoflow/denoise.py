"""Speckle reduction applied to ingested frames (stage 2).

Gaussian 5x5 is the default because the liver study used it; the others are the usual
edge-preserving alternatives for speckle.
"""

from __future__ import annotations

from typing import Callable, Mapping

import cv2
import numpy as np

METHODS = ("gaussian", "median", "bilateral", "nlm", "none")


def _odd(ksize: int) -> int:
    # OpenCV needs odd kernel sizes; round up rather than fail on a typo like 4.
    return int(ksize) | 1


def frame_filter(method: str, settings: Mapping[str, Mapping] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The per-frame filter for ``method``, configured from ``settings[method]``."""
    params = dict((settings or {}).get(method, {}) or {})
    if method == "gaussian":
        k, sigma = _odd(params.get("ksize", 5)), float(params.get("sigma", 1.0))
        return lambda frame: cv2.GaussianBlur(frame, (k, k), sigma)
    if method == "median":
        k = _odd(params.get("ksize", 5))
        return lambda frame: cv2.medianBlur(frame, k)
    if method == "bilateral":
        d = int(params.get("d", 5))
        color, space = float(params.get("sigma_color", 40.0)), float(params.get("sigma_space", 5.0))
        return lambda frame: cv2.bilateralFilter(frame, d, color, space)
    if method == "nlm":
        h = float(params.get("h", 15.0))
        template, search = _odd(params.get("template_window", 7)), _odd(params.get("search_window", 21))
        return lambda frame: cv2.fastNlMeansDenoising(frame, None, h, template, search)
    if method == "none":
        return lambda frame: frame.copy()
    raise ValueError(f"unknown denoise method {method!r}; choose one of {', '.join(METHODS)}")


def denoise_frames(frames: np.ndarray, method: str = "gaussian", settings: Mapping[str, Mapping] | None = None) -> np.ndarray:
    """Filter a stack of uint8 frames (N, H, W); returns a new uint8 array of the same shape."""
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected a (N, H, W) uint8 stack, got {frames.shape} {frames.dtype}")
    apply = frame_filter(method, settings)
    out = np.empty_like(frames)
    for index, frame in enumerate(frames):
        out[index] = apply(np.ascontiguousarray(frame))
    return out


def params(config: Mapping) -> dict:
    """Rule denoise's params from the `denoise` section: the method and its own settings only,
    so that retuning a method not in use reruns nothing."""
    method = config["method"]
    return {"method": method, method: config.get(method, {})}
