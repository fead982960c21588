import os
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

import sonoflow.sheet as sheet_module
from sonoflow.sheet import ProbeCache, SheetError, add_shards, read_sheet, relative_paths, shard_of, validate_sheet

LABELS = ["benign", "malignant"]
COLUMNS = ["patient_id", "item_id", "path", "label", "mask", "split"]


@pytest.fixture
def data(tmp_path):
    """A folder with two images (one with a mask) and a clip, and a valid sheet for them."""
    folder = tmp_path / "data"
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8)
    cv2.imwrite(str(folder / "a.png"), image)
    cv2.imwrite(str(folder / "a_mask.png"), (image > 128).astype(np.uint8) * 255)
    cv2.imwrite(str(folder / "b.jpg"), image)
    writer = cv2.VideoWriter(str(folder / "c.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (50, 40))
    for _ in range(5):
        writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()
    rows = [["P1", "a", "a.png", "benign", "a_mask.png", ""],
            ["P1", "b", "b.jpg", "benign", "", ""],
            ["P2", "c", "c.mp4", "malignant", "", "test"]]
    return folder, rows


def write(folder, rows, name="samples.csv", sep=","):
    path = folder / name
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False, sep=sep)
    return path


def check(folder, rows, **kwargs):
    return validate_sheet(read_sheet(write(folder, rows)), labels=LABELS, sheet_name="samples.csv", **kwargs)


def test_valid_sheet_passes_keeps_order_and_adds_probe_columns(data):
    folder, rows = data
    table = check(folder, rows)
    assert table["item_id"].tolist() == ["a", "b", "c"]
    assert table["line"].tolist() == [2, 3, 4]
    assert table["kind"].tolist() == ["image", "image", "video"]
    assert (table[["width", "height"]].to_numpy() == [50, 40]).all()
    assert os.path.isabs(table["path"][0]) and table["mask"][0].endswith("a_mask.png")


def test_tsv_and_absolute_paths(data):
    folder, rows = data
    rows[0][2] = str(folder / "a.png")
    table = validate_sheet(read_sheet(write(folder, rows, "s.tsv", sep="\t")), labels=LABELS)
    assert table["path"][0] == str(folder / "a.png")


@pytest.mark.parametrize("problem, expected", [
    ("missing_file", ["line 3", "'b'", "file not found"]),
    ("corrupt_video", ["line 4", "'c'", "cannot open video"]),
    ("zero_frames", ["line 4", "'c'"]),
    ("unknown_label", ["line 2", "'a'", "unknown label 'cancer'", "benign, malignant"]),
    ("duplicate_id", ["lines 2, 3", "duplicate item_id 'a'"]),
    ("two_labels", ["lines 2, 3", "patient 'P1' has several labels"]),
    ("mask_missing", ["line 2", "mask not found"]),
    ("mask_size", ["line 2", "is 10x10, the image 50x40"]),
    ("unsupported", ["line 3", "unsupported file type '.xyz'"]),
    ("bad_split", ["line 2", "split must be"]),
    ("mask_on_video", ["line 4", "only allowed for an image"]),
    ("empty_value", ["line 2", "empty patient_id"]),
    ("bad_item_id", ["line 3", "'b c'", "may hold only"]),
])
def test_each_bad_input_names_its_line(data, problem, expected):
    folder, rows = data
    if problem == "missing_file":
        rows[1][2] = "gone.png"
    elif problem == "corrupt_video":
        (folder / "c.mp4").write_bytes(os.urandom(3000))
    elif problem == "zero_frames":
        writer = cv2.VideoWriter(str(folder / "c.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (50, 40))
        writer.release()
    elif problem == "unknown_label":
        rows[0][3] = "cancer"
    elif problem == "duplicate_id":
        rows[1][1] = "a"
    elif problem == "two_labels":
        rows[1][3] = "malignant"
    elif problem == "mask_missing":
        rows[0][4] = "nope_mask.png"
    elif problem == "mask_size":
        cv2.imwrite(str(folder / "a_mask.png"), np.zeros((10, 10), np.uint8))
    elif problem == "unsupported":
        (folder / "b.xyz").write_bytes(b"x")
        rows[1][2] = "b.xyz"
    elif problem == "bad_split":
        rows[0][5] = "holdout"
    elif problem == "mask_on_video":
        rows[2][4] = "a_mask.png"
    elif problem == "empty_value":
        rows[0][0] = ""
    elif problem == "bad_item_id":
        rows[1][1] = "b c"
    with pytest.raises(SheetError) as error:
        check(folder, rows)
    for text in expected:
        assert text in str(error.value), (text, str(error.value))


def test_all_problems_are_reported_together(data):
    folder, rows = data
    rows[0][3] = "cancer"
    rows[1][2] = "gone.png"
    rows[2][5] = "later"
    with pytest.raises(SheetError) as error:
        check(folder, rows)
    message = str(error.value)
    # The unknown label also gives patient P1 two labels: four problems, each with its line.
    assert "4 problem(s)" in message
    for text in ["line 2 (item 'a'): unknown label", "line 3 (item 'b'): file not found", "lines 2, 3: patient 'P1'",
                 "line 4 (item 'c'): split must be"]:
        assert text in message, text


def test_empty_sheet(tmp_path):
    (tmp_path / "s.csv").write_text("patient_id,item_id,path,label\n")
    with pytest.raises(SheetError, match="no rows"):
        validate_sheet(read_sheet(tmp_path / "s.csv"), labels=LABELS)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(SheetError, match="empty"):
        read_sheet(tmp_path / "e.csv")


def test_missing_column(tmp_path):
    (tmp_path / "s.csv").write_text("patient_id,item_id,file,label\nP1,a,a.png,benign\n")
    with pytest.raises(SheetError, match=r"lacks column\(s\) \['path'\]"):
        validate_sheet(read_sheet(tmp_path / "s.csv"), labels=LABELS)


def test_probe_cache_probes_once_and_reprobes_changed_files(data, tmp_path, monkeypatch):
    folder, rows = data
    calls = []
    real_probe = sheet_module.probe
    monkeypatch.setattr(sheet_module, "probe", lambda path: calls.append(path) or real_probe(path))
    cache_file = tmp_path / "cache" / "probe.sqlite"
    check(folder, rows, probe_cache=ProbeCache(cache_file))
    assert len(calls) == 4  # three items and one mask
    check(folder, rows, probe_cache=ProbeCache(cache_file))
    assert len(calls) == 4, "unchanged files must not be probed again"
    (folder / "c.mp4").write_bytes(os.urandom(2000))  # replaced by a broken file
    with pytest.raises(SheetError, match="line 4"):
        check(folder, rows, probe_cache=ProbeCache(cache_file))
    assert calls[-1].endswith("c.mp4") and len(calls) == 5


def test_validation_never_writes_into_the_data_folder(data):
    folder, rows = data
    sheet = write(folder, rows)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    validate_sheet(read_sheet(sheet), labels=LABELS, probe_cache=ProbeCache(folder.parent / "cache.sqlite"))
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_shards_are_stable_across_processes_and_spread():
    assert shard_of("P001_img1", 16) == 3  # a fixed value: must never change between releases
    other = subprocess.run([sys.executable, "-c", "from sonoflow.sheet import shard_of; print(shard_of('P001_img1', 16))"],
                           capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert int(other.stdout) == 3
    counts = np.bincount([shard_of(f"item{i}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 850 and counts.max() < 1150
    table = add_shards(pd.DataFrame({"item_id": ["x", "y"]}), 4)
    assert table["shard"].tolist() == [shard_of("x", 4), shard_of("y", 4)]


def test_relative_paths_inside_only_keeps_outside_data_absolute(tmp_path):
    workdir, outside = tmp_path / "work", tmp_path / "elsewhere"
    table = pd.DataFrame({"path": [str(workdir / "results/demo/a.png"), str(outside / "b.mp4")],
                          "mask": [f"{workdir}/results/demo/a_mask.png;{outside}/a_mask2.png", ""]})
    moved = relative_paths(table, workdir, inside_only=True)
    assert moved["path"].tolist() == ["results/demo/a.png", str(outside / "b.mp4")]
    assert moved["mask"].tolist() == [f"results/demo/a_mask.png;{outside}/a_mask2.png", ""]
    # Without inside_only every path is relative (a sheet written next to its data).
    assert relative_paths(table, workdir)["path"].tolist() == ["results/demo/a.png", "../elsewhere/b.mp4"]


def test_new_cases_need_no_label_but_a_given_one_is_still_checked(data):
    folder, rows = data
    unlabelled = [[pid, item, path, "", mask, split] for pid, item, path, _, mask, split in rows]
    table = check(folder, unlabelled, require_labels=False)
    assert list(table["label"]) == ["", "", ""]
    without_column = pd.DataFrame(unlabelled, columns=COLUMNS).drop(columns="label")
    without_column.to_csv(folder / "new.csv", index=False)
    assert len(validate_sheet(read_sheet(folder / "new.csv"), labels=LABELS, require_labels=False)) == 3
    with pytest.raises(SheetError, match="line 2.*unknown label 'cancer'"):
        check(folder, [["P1", "a", "a.png", "cancer", "", ""]], require_labels=False)
    with pytest.raises(SheetError, match="patient 'P1' has several labels"):  # labelled and not, one patient
        check(folder, [["P1", "a", "a.png", "benign", "", ""], ["P1", "b", "b.jpg", "", "", ""]], require_labels=False)
    with pytest.raises(SheetError, match="line 2.*empty label"):  # training sheets still need every label
        check(folder, unlabelled)


def test_every_problem_of_a_bad_sheet_is_in_one_message(data, tmp_path):
    """The holes of issue 14 together with the old checks: one error, every line, in line order."""
    from test_frames import cut_clip
    from conftest import write_dicom

    folder, rows = data
    cine = np.random.default_rng(1).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    write_dicom(folder / "header_only.dcm", cine, pixel_data=False)
    write_dicom(folder / "cine.dcm", cine)
    (folder / "broken.mp4").write_bytes(os.urandom(3000))
    cv2.imwrite(str(folder / "small_mask.png"), np.zeros((10, 10), np.uint8))
    cut, decodable = cut_clip(tmp_path)
    rows[0][3] = "cancer"  # line 2: unknown label (and so P1 has two labels: lines 2, 3)
    rows[1][2] = "gone.png"  # line 3: missing file
    rows += [["P3", "d", "broken.mp4", "benign", "", ""],  # line 5: corrupt video
             ["P3", "e", "b.jpg", "benign", "small_mask.png", ""],  # line 6: mask of another size
             ["P4", "f", "header_only.dcm", "malignant", "", ""],  # line 7: DICOM without pixel data
             ["P4", "g", "cine.dcm", "malignant", "a_mask.png", ""],  # line 8: mask on a 3-frame DICOM
             ["P4", "h", str(cut), "malignant", "", ""],  # line 9: cut short (the ingest log says so)
             ["P5", "i", "b.jpg", "benign", "", ""]]  # line 10: its patient id is not UTF-8 (below)
    path = write(folder, rows)
    path.write_bytes(path.read_bytes().replace(b"\nP5,", "\nRen\u00e9e,".encode("cp1252")))
    with pytest.raises(SheetError) as error:
        validate_sheet(read_sheet(path), labels=LABELS, sheet_name="samples.csv")
    message = str(error.value)
    expected = ["line 2 (item 'a'): unknown label 'cancer'",
                "lines 2, 3: patient 'P1' has several labels",
                "line 3 (item 'b'): file not found",
                "line 5 (item 'd'): cannot open video",
                "line 6 (item 'e'): mask", "is 10x10, the image 50x40",
                "line 7 (item 'f'): DICOM", "header_only.dcm has no pixel data",
                "line 8 (item 'g'): a mask is only allowed for an image of one frame, not a DICOM of 3 frames",
                "line 10: not UTF-8 text (byte 0xe9 at column 4, near 'Ren\ufffde,i,", "save the sheet as UTF-8"]
    for text in expected:
        assert text in message, (text, message)
    assert message.startswith("8 problem(s) in samples.csv")
    assert "samples.csv line 9" not in message and "samples.csv line 4" not in message  # intact and cut-short clips pass
    positions = [message.index(text) for text in ("line 2 ", "line 3 ", "line 5 ", "line 6 ", "line 7 ", "line 8 ",
                                                  "line 10:")]
    assert positions == sorted(positions), "in line order"


def test_a_sheet_in_another_encoding_names_the_line_and_the_fix(data):
    folder, rows = data
    path = write(folder, rows)
    path.write_bytes(path.read_bytes().replace(b"P2,", "Jos\u00e9,".encode("latin-1")))
    with pytest.raises(SheetError, match=r"samples.csv line 4: not UTF-8 text \(byte 0xe9 at column 4.*CSV UTF-8"):
        validate_sheet(read_sheet(path), labels=LABELS, sheet_name="samples.csv")
    # UTF-8 with a byte-order mark (Excel's 'CSV UTF-8') is fine, accents and all.
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"Jos\xe9", "Jos\u00e9".encode()))
    table = validate_sheet(read_sheet(path), labels=LABELS, sheet_name="samples.csv")
    assert table["patient_id"].tolist() == ["P1", "P1", "Jos\u00e9"]


def test_results_of_an_older_probe_are_not_reused(data, tmp_path):
    """A cache written by the probe that passed header-only DICOM files must not pass them now."""
    import sqlite3

    from conftest import write_dicom

    folder, rows = data
    dicom = write_dicom(folder / "header_only.dcm", np.zeros((1, 40, 50), np.uint8), pixel_data=False)
    stat = dicom.stat()
    cache_file = tmp_path / "probe.sqlite"
    with sqlite3.connect(cache_file) as old:  # the version-1 layout, holding a stale "valid" result
        old.execute("CREATE TABLE probe (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, result TEXT)")
        old.execute("INSERT INTO probe VALUES (?, ?, ?, ?)", (str(dicom), stat.st_size, stat.st_mtime_ns,
                    '{"kind": "dicom", "width": 50, "height": 40, "n_frames": 1, "fps": 0.0}'))
    rows[1][2] = "header_only.dcm"
    with pytest.raises(SheetError, match="line 3.*has no pixel data"):
        check(folder, rows, probe_cache=ProbeCache(cache_file))


def test_a_patient_with_items_of_several_labels_passes_when_items_are_scored(data):
    folder, rows = data
    rows[1][3] = "malignant"  # P1: a benign image and a malignant one
    with pytest.raises(SheetError, match="patient 'P1' has several labels.*evaluate.unit item or auto"):
        check(folder, rows)
    table = check(folder, rows, several_labels_per_patient=True)
    assert table.groupby("patient_id")["label"].nunique()["P1"] == 2
    rows[1][3] = "cancer"  # the other checks still run
    with pytest.raises(SheetError, match="unknown label 'cancer'"):
        check(folder, rows, several_labels_per_patient=True)
