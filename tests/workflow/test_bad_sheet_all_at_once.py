"""A sample sheet with every kind of problem at once: snakemake stops before any job with one
message naming every offending line, and writes nothing under results/."""

import os
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_snakemake, write_dicom

sys.path.insert(0, str(REPO / "tests/unit"))
from test_frames import cut_clip  # noqa: E402

pytestmark = pytest.mark.workflow
LABELS = ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]


def test_every_problem_is_named_in_one_message_before_any_job(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 50), dtype=np.uint8)
    cv2.imwrite(str(data / "a.png"), image)
    cv2.imwrite(str(data / "a_mask.png"), (image > 128).astype(np.uint8) * 255)
    cv2.imwrite(str(data / "small_mask.png"), np.zeros((10, 10), np.uint8))
    (data / "broken.mp4").write_bytes(os.urandom(3000))
    cine = rng.integers(0, 255, (3, 40, 50), dtype=np.uint8)
    write_dicom(data / "header_only.dcm", cine, pixel_data=False)
    write_dicom(data / "cine.dcm", cine)
    cut, decodable = cut_clip(tmp_path)
    rows = [["P1", "a", "a.png", "tumour", "", ""],  # line 2: unknown label
            ["P2", "b", "gone.png", "cyst", "", ""],  # line 3: missing file
            ["P3", "c", "broken.mp4", "cyst", "", ""],  # line 4: corrupt video
            ["P4", "d", "a.png", "normal", "small_mask.png", ""],  # line 5: mask of another size
            ["P5", "e", "header_only.dcm", "normal", "", ""],  # line 6: DICOM without pixel data
            ["P6", "f", "cine.dcm", "normal", "a_mask.png", ""],  # line 7: mask on a 3-frame DICOM
            ["P7", "g", str(cut), "normal", "", ""],  # line 8: cut short: passes, ingest logs it
            ["P8", "h", "a.png", "cyst", "", ""]]  # line 9: patient id not UTF-8 (below)
    sheet = data / "samples.csv"
    pd.DataFrame(rows, columns=["patient_id", "item_id", "path", "label", "mask", "split"]).to_csv(sheet, index=False)
    sheet.write_bytes(sheet.read_bytes().replace(b"\nP8,", "\nZo\u00eb,".encode("cp1252")))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in data.iterdir())

    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, config={"samples": str(sheet)}, check=False)
    message = result.stdout + result.stderr
    assert result.returncode != 0
    assert "7 problem(s) in samples.csv" in message, message[-3000:]
    for text in ["line 2 (item 'a'): unknown label 'tumour'", "line 3 (item 'b'): file not found",
                 "line 4 (item 'c'): cannot open video", "line 5 (item 'd'): mask", "is 10x10, the image 50x40",
                 "line 6 (item 'e'): DICOM", "has no pixel data",
                 "line 7 (item 'f'): a mask is only allowed for an image of one frame, not a DICOM of 3 frames",
                 "line 9: not UTF-8 text (byte 0xeb at column 3", "save the sheet as UTF-8"]:
        assert text in message, (text, message[-3000:])
    assert "samples.csv line 8" not in message
    assert not (workdir / "results").exists(), "nothing may be written before the sheet is valid"
    assert sorted((p.name, p.stat().st_mtime_ns) for p in data.iterdir()) == before, "raw data is only read"
