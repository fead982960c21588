"""Sample sheets for the real data sets in ../shared/data (benchmarks and manual checks only).

    python benchmarks/real_data.py ddti OUT.csv     # thyroid nodule crops, binary label, case = patient
    python benchmarks/real_data.py ctrus OUT.csv    # colon frames, label = image quality, with masks
    python benchmarks/real_data.py breast OUT.csv   # BrEaST-Lesions-USG: benign vs malignant (4 normal left out), masks
    python benchmarks/real_data.py lung OUT.csv     # lung POCUS clips and images, 4 classes, several clips per patient
    python benchmarks/real_data.py ctrus-patients OUT.csv  # colon frames, one placeholder label per patient
                                                           # (odd/even number), for stages that need no label
                                                           # (near-duplicates: benchmarks/configs/ctrus_dedup.yaml)

The data is read where it lies; nothing is copied. Skips cleanly (exit 0) when it is absent.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from sonoflow.io import save_csv

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def ddti_sheet(root: Path = DATA / "ddti") -> pd.DataFrame:
    """Labelled nodule crops: `100_1(2)` is case 100, image 1, nodule 2; the label is the crop's
    (0 = TI-RADS 2-3 -> benign_like, 1 = 4a-5 -> suspicious); unlabelled images are left out."""
    diagnosis = pd.read_csv(root / "diagnosis.csv", header=None, names=["image", "tirads", "binary"], dtype=str,
                            keep_default_na=False)
    label_of = {row.image: {"0": "benign_like", "1": "suspicious"}.get(row.binary, "") for row in diagnosis.itertuples()}
    rows = []
    for crop in sorted((root / "cropped").glob("*.png")):
        image = re.sub(r"\(\d+\)$", "", crop.stem)
        label = label_of.get(crop.stem) or label_of.get(image, "")
        if not label:
            continue
        mask = root / "mask" / f"{crop.stem}.gif"
        rows.append({"patient_id": image.split("_")[0], "item_id": re.sub(r"[^A-Za-z0-9._-]", "_", crop.stem).strip("_"),
                     "path": str(crop), "label": label, "mask": str(mask) if mask.exists() else "", "split": ""})
    return pd.DataFrame(rows)


def ctrus_sheet(root: Path = DATA / "ctrus") -> pd.DataFrame:
    table = pd.read_csv(root / "c-trus.csv", dtype=str, keep_default_na=False)
    return pd.DataFrame({"patient_id": "patient" + table["patient"],
                         "item_id": table["file"].str.replace(".jpg", "", regex=False),
                         "path": [str(root / "original" / f) for f in table["file"]], "label": table["quality_name"],
                         "mask": [str(root / "labels" / f) for f in table["file"]], "split": ""})


def ctrus_patient_sheet(root: Path = DATA / "ctrus") -> pd.DataFrame:
    """C-TRUS quality varies frame by frame, but a sheet holds one label per patient."""
    sheet = ctrus_sheet(root)
    return sheet.assign(label=["odd" if int(p.removeprefix("patient")) % 2 else "even" for p in sheet["patient_id"]])


def breast_sheet(root: Path = DATA / "breast_lesions_usg") -> pd.DataFrame:
    """One image per case; the few `normal` images (no lesion, 4 of 256) are left out of the binary question."""
    table = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    table = table[table["label"].isin(["benign", "malignant"])]
    return pd.DataFrame({"patient_id": "case" + table["patient_id"].str.zfill(3),
                         "item_id": [Path(image).stem for image in table["image"]],
                         "path": [str(root / image) for image in table["image"]], "label": table["label"],
                         "mask": [str(root / mask) if mask else "" for mask in table["mask"]], "split": ""})


def lung_sheet(root: Path = DATA / "covid_lung_pocus") -> pd.DataFrame:
    """Clips and images of 108 patients; labels as sonoflow names (lower case, no spaces)."""
    table = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    names = {"regular": "regular", "Bacterial pneumonia": "bacterial", "COVID-19": "covid", "Viral pneumonia": "viral"}
    return pd.DataFrame({"patient_id": "p" + table["patient_id"],
                         "item_id": [re.sub(r"[^A-Za-z0-9._-]", "_", Path(f).stem).strip("_") + f"_{i}"
                                     for i, f in enumerate(table["file"])],
                         "path": [str(root / f) for f in table["file"]], "label": table["label"].map(names),
                         "mask": "", "split": ""})


SHEETS = {"ddti": ddti_sheet, "ctrus": ctrus_sheet, "ctrus-patients": ctrus_patient_sheet, "breast": breast_sheet,
          "lung": lung_sheet}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in SHEETS:
        print(__doc__)
        return 2
    if not DATA.is_dir():
        print(f"SKIP: {DATA} not found")
        return 0
    sheet = SHEETS[sys.argv[1]]()
    save_csv(sys.argv[2], sheet)
    print(f"{len(sheet)} items, {sheet['patient_id'].nunique()} patients, labels {sheet['label'].value_counts().to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
