"""The leakage canary: labels are random per patient, but every image carries its patient's
fingerprint. A model can only score above chance by recognising patients it has seen, so an
image-level split scores high (the canary bites) and sonoflow's patient-level split must not.
"""

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from sonoflow.split import SplitSettings, make_splits, partition_for_fold, select_frames
from sonoflow.train import AugmentSettings, TrainSettings, predict_proba, train_classifier

N_PATIENTS, IMAGES_PER_PATIENT, SIZE = 200, 4, 32
SETTINGS = TrainSettings(model="tiny", input_size=SIZE, epochs=25, batch_size=32, lr=3e-3, patience=25, seed=0,
                         device="cpu", class_weighting="none",
                         augment=AugmentSettings(hflip=0, rotate=0, translate=0, scale=0, brightness=0, contrast=0))


def canary_data(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    patient_label = rng.integers(0, 2, N_PATIENTS)  # independent of anything in the images
    fingerprints = rng.integers(0, 256, (N_PATIENTS, 4, 4)).astype(np.float32)
    rows, images = [], []
    for patient in range(N_PATIENTS):
        base = np.kron(fingerprints[patient], np.ones((SIZE // 4, SIZE // 4), np.float32))
        for image in range(IMAGES_PER_PATIENT):
            noisy = base + rng.normal(0, 12, base.shape)
            images.append(np.clip(noisy, 0, 255).astype(np.uint8))
            rows.append({"patient_id": f"P{patient:03d}", "item_id": f"P{patient:03d}_{image}",
                         "label": "positive" if patient_label[patient] else "negative", "split": ""})
    return pd.DataFrame(rows), np.stack(images)


def fingerprint_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 2))


def held_out_auc(frames: pd.DataFrame, images: np.ndarray, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> float:
    y = lambda part: (part["label"] == "positive").to_numpy().astype(int)  # noqa: E731
    result = train_classifier(fingerprint_cnn(), images[train.index], y(train), images[val.index], y(val), 2, SETTINGS)
    probs = predict_proba(result.model, images[test.index], SIZE)
    return roc_auc_score(y(test), probs[:, 1])


def test_image_level_split_leaks_and_patient_level_split_does_not():
    frames, images = canary_data()
    labels = ["negative", "positive"]

    # What one-off scripts do: shuffle images, ignore patients.
    order = np.random.default_rng(1).permutation(len(frames))
    cut_val, cut_test = int(0.6 * len(order)), int(0.7 * len(order))
    leaky_auc = held_out_auc(frames, images, frames.iloc[order[:cut_val]], frames.iloc[order[cut_val:cut_test]],
                         frames.iloc[order[cut_test:]])

    splits = make_splits(frames, labels, SplitSettings(seed=3, test_fraction=0.3, folds=2))
    partition = partition_for_fold(splits, 0)
    parts = {name: select_frames(frames, partition, name) for name in ("train", "val", "test")}
    honest_auc = held_out_auc(frames, images, parts["train"], parts["val"], parts["test"])

    assert leaky_auc > 0.85, f"the canary must bite: image-level split AUC {leaky_auc:.3f}"
    assert honest_auc < 0.65, f"patient-level split must be near chance, got AUC {honest_auc:.3f}"
    print(f"canary: image-level split AUC {leaky_auc:.3f}, sonoflow patient-level split AUC {honest_auc:.3f}")
