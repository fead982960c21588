"""Precision and recall of the burned-in mark detector (sonoflow.audit) on generated frames.

Demo stills (synthetic B-mode, each from a generator seed) get planted marks at their original
resolution: calipers (two crosses), a dotted line, a measurement text, a colour Doppler box, or
nothing (a quarter of the frames, for false alarms). Each is written as a file and ingested
exactly as the workflow does (scan-area crop, resize to ``--size``, colour share before
grayscale); the planted marks' pixel masks take the same geometry. A planted mark is found when
a detected box overlaps it (a Doppler box: when the frame is flagged colour); a detected box is
right when it overlaps a planted mark (a colour flag: when the frame carries a Doppler box).

    .venv/bin/python benchmarks/bench_audit.py [--patients-per-class 6] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from sonoflow.audit import AuditSettings, audit_frames, planted_stills
from sonoflow.demo import make_demo

CHOICES = [(), ("caliper",), ("caliper", "dots"), ("text",), ("caliper", "text"), ("doppler",), ("doppler", "caliper"),
           ("dots",)]


def planted_set(folder: Path, patients_per_class: int, size: int, seed: int):
    """Ingested frames, their frame table and, per frame, the planted marks in ingest geometry."""
    sheet = make_demo(folder, n_patients_per_class=patients_per_class, images_per_patient=2, clips_per_patient=0,
                      seed=seed)
    plants = [CHOICES[k % len(CHOICES)] if k % 4 else () for k in range(len(sheet))]
    return planted_stills(sheet, folder, plants, size, seed)


def score(marks, truth):
    found, planted, right, detected, clean_flagged, clean = Counter(), Counter(), Counter(), Counter(), 0, 0
    for boxes, marks_here in zip(marks["boxes"].map(json.loads), truth):
        for kind, mask in marks_here:
            planted[kind] += 1
            if kind == "doppler":
                hit = any(box[0] == "colour" for box in boxes)
            else:
                hit = any(mask[y0:y1, x0:x1].any() for k, y0, y1, x0, x1 in boxes if k != "colour")
            found[kind] += hit
        for kind, y0, y1, x0, x1 in boxes:
            detected[kind] += 1
            if kind == "colour":
                right[kind] += any(k == "doppler" for k, _ in marks_here)
            else:
                right[kind] += any(mask[y0:y1, x0:x1].any() for k, mask in marks_here if k != "doppler")
        if not marks_here:
            clean += 1
            clean_flagged += bool(boxes)
    return found, planted, right, detected, clean_flagged, clean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients-per-class", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        frames, table, truth = planted_set(Path(folder), args.patients_per_class, args.size, args.seed)
        start = time.perf_counter()
        marks, _ = audit_frames(frames, table, AuditSettings())
        seconds = time.perf_counter() - start
    found, planted, right, detected, clean_flagged, clean = score(marks, truth)
    print(f"{len(frames)} generated frames at {args.size}x{args.size}, {sum(planted.values())} planted marks, "
          f"{clean} frames without marks; detector {1000 * seconds / len(frames):.1f} ms/frame")
    for kind in ("caliper", "dots", "text", "doppler"):
        print(f"  recall {kind:8s} {found[kind]}/{planted[kind]} = {found[kind] / max(planted[kind], 1):.2f}")
    total_found, total_planted = sum(found.values()), sum(planted.values())
    total_right, total_detected = sum(right.values()), sum(detected.values())
    print(f"  recall all      {total_found}/{total_planted} = {total_found / max(total_planted, 1):.2f}")
    print(f"  precision       {total_right}/{total_detected} = {total_right / max(total_detected, 1):.2f} "
          f"(by kind: {', '.join(f'{k} {right[k]}/{detected[k]}' for k in sorted(detected))})")
    print(f"  clean frames flagged {clean_flagged}/{clean}")


if __name__ == "__main__":
    main()
