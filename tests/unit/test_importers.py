import cv2
import numpy as np
import pandas as pd
import pytest

from sonoflow.importers import import_busi, import_class_folders, import_csv, load_layout, main, safe_id
from sonoflow.sheet import read_sheet, validate_sheet


def png(path, value=100, shape=(20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def test_busi_merges_several_masks_and_makes_safe_unique_ids(tmp_path):
    root = tmp_path / "BUSI"
    png(root / "benign" / "benign (1).png")
    png(root / "benign" / "benign (1)_mask.png", 255)
    png(root / "benign" / "benign (1)_mask_1.png", 255)
    png(root / "malignant" / "malignant (1).png")
    png(root / "malignant" / "malignant (1)_mask.png", 255)
    table = import_busi(root)
    assert table["item_id"].tolist() == ["benign_benign_1", "malignant_malignant_1"]
    assert table["patient_id"].tolist() == table["item_id"].tolist()
    assert len(table["mask"][0].split(";")) == 2 and table["label"].tolist() == ["benign", "malignant"]
    validate_sheet(table, labels=["benign", "malignant"])  # the result is a valid sheet


def test_class_folders_with_and_without_patient_subfolders(tmp_path):
    root = tmp_path / "data"
    png(root / "cyst" / "a.png")
    png(root / "cyst" / "a_mask.png", 255)
    png(root / "normal" / "P9" / "x.png")
    png(root / "normal" / "P9" / "y.png")
    (root / "normal" / "notes.txt").write_text("ignored")
    table = import_class_folders(root)
    assert table["patient_id"].tolist() == ["a", "P9", "P9"]
    assert table["mask"][0].endswith("a_mask.png") and table["mask"][1] == ""
    assert table["item_id"].is_unique


def test_csv_mapping_label_map_template_and_patient_pattern(tmp_path):
    png(tmp_path / "images" / "12_1.png")
    png(tmp_path / "images" / "12_2.png")
    png(tmp_path / "images" / "13_1.png")
    (tmp_path / "dx.csv").write_text("12_1,4a,1\n12_2,4b,1\n13_1,3,0\n14_1,None,\n")
    table = import_csv(tmp_path / "dx.csv", {"item_id": "0", "label": "2"}, header=False,
                       label_map={"0": "benign", "1": "malignant"}, path_template="images/{item_id}.png",
                       patient_pattern=r"^(\d+)_", drop_unlabelled=True)
    assert table["patient_id"].tolist() == ["12", "12", "13"]
    assert table["label"].tolist() == ["malignant", "malignant", "benign"]
    validate_sheet(table, labels=["benign", "malignant"])
    with pytest.raises(ValueError, match="no column"):
        import_csv(tmp_path / "dx.csv", {"item_id": "name"})


def test_cli_writes_relative_paths_and_load_layout(tmp_path):
    root = tmp_path / "data"
    png(root / "benign" / "b.png")
    png(root / "malignant" / "m.png")
    out = tmp_path / "sheets" / "s.csv"
    main(["class_folders", str(root), "-o", str(out)])
    written = pd.read_csv(out, keep_default_na=False)
    assert written["path"].tolist() == ["../data/benign/b.png", "../data/malignant/m.png"]
    assert read_sheet(out)["path"][0] == str((root / "benign" / "b.png").resolve())
    via_config = load_layout({"layout": "class_folders", "folder": "data"}, base_dir=tmp_path)
    assert via_config["path"].tolist() == read_sheet(out)["path"].tolist()


def test_safe_id():
    assert safe_id("benign (12)") == "benign_12"
    assert safe_id("a/b c") == "a_b_c"
