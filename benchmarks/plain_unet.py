"""The plain segmentation baseline: a hundred-line smp U-Net fine-tune on the run's own patients.

    python benchmarks/plain_unet.py RUN_DIR SHEET [--segmenter all] [--epochs 20] [--size 256]

RUN_DIR is a finished sonoflow run with a segmenter (results/segment/<segmenter>/unet.pt and its
metrics.csv); SHEET the sample sheet it ran on. The baseline trains smp's U-Net with the packaged
ImageNet EfficientNet-Lite0 encoder on exactly the patients sonoflow's segmenter trained on (its
early-stopping patients validate it too), with none of sonoflow's processing: each still image
and its mask decoded from the sheet's files and resized to SIZE x SIZE (no scan-area crop, no
denoise), Adam (lr 1e-3), Dice + BCE, batch 16, random horizontal flips, EPOCHS passes, the epoch
with the lowest validation loss kept, a 0.5 threshold. It is scored with sonoflow's own
``mask_scores`` (Dice, IoU, HD95) on the frames sonoflow's segmenter was scored on (its
metrics.csv: the test patients), each mask compared at the baseline's resolution, and the two
summaries are printed side by side.

Writes RUN_DIR/results/baseline/unet/ (metrics.csv, summary.csv, comparison.csv).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from sonoflow import checkpoints
from sonoflow.frames import mask_paths, read_mask
from sonoflow.io import save_csv
from sonoflow.media import read_image
from sonoflow.segment import DiceBCELoss, build_unet, segmentation_summary, segmentation_table
from sonoflow.loop import seed_everything

MEAN, STD = 0.449, 0.226


def load_pairs(items: pd.DataFrame, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size) uint8 images and 0/1 masks, decoded from the sheet rows ``items``."""
    images = np.empty((len(items), size, size), np.uint8)
    masks = np.empty((len(items), size, size), np.uint8)
    for i, row in enumerate(items.itertuples()):
        image = read_image(row.path)
        images[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        mask = read_mask(mask_paths(row.mask), image.shape[:2])
        masks[i] = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return images, masks


def as_input(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(np.ascontiguousarray(images)).float().div_(255).unsqueeze(1) - MEAN) / STD


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 16) -> np.ndarray:
    model.eval()
    return np.concatenate([torch.sigmoid(model(as_input(images[i:i + batch])))[:, 0].numpy()
                           for i in range(0, len(images), batch)])


def train(images: dict[str, np.ndarray], masks: dict[str, np.ndarray], epochs: int, seed: int) -> torch.nn.Module:
    seed_everything(seed)
    model = build_unet("tu-efficientnet_lite0", in_channels=1, weights="efficientnet-lite0-package")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = DiceBCELoss()
    generator = torch.Generator().manual_seed(seed)
    best, best_state = np.inf, None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images["train"]), generator=generator).numpy()
        for start in range(0, len(order), 16):
            chosen = np.sort(order[start:start + 16])
            if len(chosen) < 2:
                continue
            x, y = as_input(images["train"][chosen]), torch.from_numpy(masks["train"][chosen]).float().unsqueeze(1)
            flip = torch.rand(len(x), generator=generator) < 0.5
            x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(np.mean([float(loss_fn(model(as_input(images["val"][i:i + 16])),
                                                    torch.from_numpy(masks["val"][i:i + 16]).float().unsqueeze(1)))
                                      for i in range(0, len(images["val"]), 16)]))
        print(f"  epoch {epoch + 1}/{epochs}: validation loss {val_loss:.4f}", flush=True)
        if val_loss < best:
            best, best_state = val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model


def run(run_dir: Path, sheet_path: Path, segmenter: str, epochs: int, size: int, threads: int = 0) -> pd.DataFrame:
    torch.set_num_threads(threads or os.cpu_count() or 1)
    results = run_dir / "results"
    patients = checkpoints.load_segmenter(results / "segment" / segmenter / "unet.pt")["patients"]
    scored = pd.read_csv(results / "segment" / segmenter / "metrics.csv", dtype={"patient_id": str, "item_id": str})
    sheet = pd.read_csv(sheet_path, dtype=str, keep_default_na=False, sep=None, engine="python")
    sheet["path"] = [p if Path(p).is_absolute() else str(sheet_path.parent / p) for p in sheet["path"]]
    sheet["mask"] = [";".join(m if Path(m).is_absolute() else str(sheet_path.parent / m) for m in mask_paths(v))
                     for v in sheet["mask"]]
    masked = sheet[sheet["mask"] != ""]
    if scored["frame_index"].max() > 0:
        raise SystemExit("plain_unet.py scores still images only (one frame per item)")
    parts = {"train": masked[masked["patient_id"].isin(patients["train"])],
             "val": masked[masked["patient_id"].isin(patients["val"])],
             "test": masked.set_index("item_id").loc[scored["item_id"]].reset_index()}
    assert not set(parts["test"]["patient_id"]) & (set(patients["train"]) | set(patients["val"]))
    print(", ".join(f"{name} {part['patient_id'].nunique()} patients / {len(part)} images"
                    for name, part in parts.items()), flush=True)
    started = time.perf_counter()
    data = {name: load_pairs(part, size) for name, part in parts.items()}
    model = train({k: v[0] for k, v in data.items()}, {k: v[1] for k, v in data.items()}, epochs, seed=42)
    predicted = (predict(model, data["test"][0]) > 0.5).astype(np.uint8)
    table = segmentation_table(parts["test"].assign(frame_index=0), predicted, data["test"][1])
    print(f"plain U-Net trained and scored in {time.perf_counter() - started:.0f} s", flush=True)
    out = results / "baseline" / "unet"
    save_csv(out / "metrics.csv", table)
    summary = segmentation_summary(table)
    save_csv(out / "summary.csv", summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("sheet", type=Path)
    parser.add_argument("--segmenter", default="all", help="results/segment/<segmenter>/ of the run (default: all)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: every core; on a shared "
                        "machine 1 avoids OpenMP's spin-waits)")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    baseline = run(args.run_dir, args.sheet, args.segmenter, args.epochs, args.size, args.threads)
    ours = pd.read_csv(args.run_dir / "results" / "segment" / args.segmenter / "summary.csv")
    table = pd.concat([ours.assign(run=f"sonoflow ({args.segmenter})"), baseline.assign(run="plain smp U-Net")])
    table = table[["run", "label", "frames", "patients", "dice_mean", "dice_sd", "iou_mean", "hd95_mean"]].round(3)
    save_csv(args.run_dir / "results" / "baseline" / "unet" / "comparison.csv", table)
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
