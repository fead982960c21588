"""Settings that are planned from the run rather than fixed: each ``auto`` value resolved in one
place, without importing torch (the workflow resolves them while it parses)."""

from __future__ import annotations

from typing import Sequence


def per_fold_segmenters(per_fold: bool | str, inputs: Sequence[str]) -> bool:
    """``segment.per_fold: auto``: one U-Net per fold when a classifier reads its ROI crops (a
    U-Net that saw a fold's validation patients would flatter that fold's figures); otherwise one
    U-Net on every non-test patient, which then only draws lesions for the explanations and Dice."""
    if per_fold == "auto":
        return any(mode in ("roi", "both") for mode in inputs)
    return bool(per_fold)
