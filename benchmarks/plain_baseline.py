"""The plain baseline: what a careful hundred-line fine-tuning script gets on the same split.

    python benchmarks/plain_baseline.py RUN_DIR SHEET [--model efficientnet_lite0] [--epochs 15] [--size 224]

RUN_DIR is a finished sonoflow run (its `results/splits.json` and `results/frames.csv` are read);
SHEET is the sample sheet it ran on (paths relative to the sheet). The baseline trains the same
pretrained backbone on the same patients and the same frames of each fold, with none of
sonoflow's processing: the raw decoded frame resized to SIZE x SIZE (no scan-area crop, no
denoise, no ROI), gray repeated to RGB, ImageNet normalisation, random horizontal flips,
AdamW (lr 3e-4, weight decay 1e-4), plain cross-entropy, batch 32, EPOCHS epochs, the epoch
with the lowest validation loss kept. Its predictions are scored exactly as sonoflow scores a
run (sonoflow.evaluate.evaluate_run: fold ensemble on the test patients, pooled out-of-fold,
image and patient level, 95% CIs), and printed beside the run's own headline figures.

With ``--frames processed`` the same recipe reads the run's own frames instead (scan-area crop,
resize, denoise: results/denoise/), so that a gap between sonoflow and the baseline can be put on
the input or on the recipe.

Writes RUN_DIR/results/baseline/<model>[_processed]/ (per-fold predictions, headline.csv, comparison.csv).
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
from torch import nn

from sonoflow.dataset import read_frame_table
from sonoflow.evaluate import EvaluateSettings, evaluate_run, read_headline
from sonoflow.io import save_csv
from sonoflow.media import iter_frames
from sonoflow.models import build_model
from sonoflow.loop import seed_everything
from sonoflow.split import partition_for_fold, read_splits, select_frames, usable_frames
from sonoflow.train import prediction_table

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
DEFAULT_WEIGHTS = {"efficientnet_lite0": "efficientnet-lite0-package", "efficientnet_lite1": "efficientnet-lite1-package",
                   "efficientnet_lite2": "efficientnet-lite2-package"}


def raw_frames(frames: pd.DataFrame, sheet: pd.DataFrame, size: int) -> np.ndarray:
    """(N, size, size) uint8: each frame of ``frames`` decoded from its source file and resized, nothing else."""
    out = np.empty((len(frames), size, size), np.uint8)
    paths = dict(zip(sheet["item_id"].astype(str), sheet["path"]))
    for item_id, rows in frames.groupby("item_id", sort=False):
        wanted = dict(zip(rows["frame_index"].astype(int), rows.index))
        for index, _, frame in iter_frames(paths[item_id], keep=lambda i, t: i in wanted):  # noqa: B023 - consumed here
            out[frames.index.get_loc(wanted[index])] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return out


def processed_frames(frames: pd.DataFrame, run_dir: Path, size: int) -> np.ndarray:
    """(N, size, size) uint8: the run's own frames (scan-area crop, resize, denoise: results/denoise),
    resized to ``size``: the baseline's recipe on sonoflow's input, to tell input from recipe."""
    from sonoflow.dataset import FrameStore

    store = FrameStore.from_paths(sorted((run_dir / "results" / "denoise").glob("shard_*/frames.npy")))
    stored = store.gather(frames)
    return np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in stored])


def as_input(batch: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(batch)).float().div_(255).unsqueeze(1).expand(-1, 3, -1, -1)
    return (x - MEAN) / STD


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(as_input(images[i:i + batch])), 1).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def train_fold(model: nn.Module, images: dict[str, np.ndarray], targets: dict[str, np.ndarray], epochs: int,
               seed: int) -> nn.Module:
    """AdamW, cross-entropy, flips; the weights of the epoch with the lowest validation loss."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    best, best_state = np.inf, None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images["train"]), generator=generator).numpy()
        for start in range(0, len(order), 32):
            chosen = np.sort(order[start:start + 32])
            x = as_input(images["train"][chosen])
            flip = torch.rand(len(x), generator=generator) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = loss_fn(model(x), torch.from_numpy(targets["train"][chosen]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        probs = predict(model, images["val"])
        val_loss = float(nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-8)),
                                                torch.from_numpy(targets["val"])))
        print(f"  epoch {epoch + 1}/{epochs}: validation loss {val_loss:.4f}", flush=True)
        if val_loss < best:
            best, best_state = val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model


def run(run_dir: Path, sheet_path: Path, model_name: str, epochs: int, size: int, positive: list[str],
        labels: list[str] | None, threads: int = 0, frames_from: str = "raw") -> pd.DataFrame:
    torch.set_num_threads(threads or os.cpu_count() or 1)
    results = run_dir / "results"
    splits = read_splits(results / "splits.json")
    frames = usable_frames(read_frame_table(results / "frames.csv"), splits)
    sheet = pd.read_csv(sheet_path, dtype=str, keep_default_na=False, sep=None, engine="python")
    sheet["path"] = [p if Path(p).is_absolute() else str(sheet_path.parent / p) for p in sheet["path"]]
    labels = labels or sorted(frames["label"].unique())
    class_index = {name: index for index, name in enumerate(labels)}
    out_dir = results / "baseline" / (model_name if frames_from == "raw" else f"{model_name}_{frames_from}")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frames = frames.reset_index(drop=True)
    images_all = raw_frames(frames, sheet, size) if frames_from == "raw" else processed_frames(frames, run_dir, size)
    print(f"{frames_from} frames: {len(frames)} at {size} px in {time.perf_counter() - started:.0f} s", flush=True)
    val_tables, test_tables = [], []
    for fold in [int(f["fold"]) for f in splits["folds"]]:
        partition = partition_for_fold(splits, fold)
        parts = {name: select_frames(frames, partition, name) for name in ("train", "val", "test")}
        images = {name: images_all[part.index.to_numpy()] for name, part in parts.items()}
        targets = {name: part["label"].map(class_index).to_numpy() for name, part in parts.items()}
        print(f"fold {fold}: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()), flush=True)
        seed_everything(42 + fold)
        model = build_model(model_name, len(labels), in_channels=3, weights=DEFAULT_WEIGHTS.get(model_name),
                            input_size=size)
        model = train_fold(model, images, targets, epochs, seed=fold)
        for name, tables in (("val", val_tables), ("test", test_tables)):
            probs = predict(model, images[name]) if len(parts[name]) else np.zeros((0, len(labels)), np.float32)
            table = prediction_table(parts[name], probs.reshape(len(parts[name]), len(labels)), labels)
            save_csv(out_dir / f"fold_{fold}_predictions_{name}.csv", table)
            tables.append(table)
    evaluation = evaluate_run(val_tables, test_tables, labels, EvaluateSettings(positive=tuple(positive)))
    save_csv(out_dir / "headline.csv", evaluation.headline)
    print(f"baseline trained and scored in {time.perf_counter() - started:.0f} s", flush=True)
    return evaluation.headline


def comparison(run_dir: Path, baseline: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """The overall AUC and accuracy of every sonoflow run in RUN_DIR beside the baseline's."""
    rows = []
    sources = {f"plain baseline ({model_name})": baseline}
    for path in sorted((run_dir / "results" / "evaluate").glob("*/*/headline.csv")):
        sources[f"sonoflow {path.parent.parent.name}/{path.parent.name}"] = read_headline(path)
    for name, table in sources.items():
        # The binary question's and the overall rows carry no class (empty): those, and macro ones.
        table = table.assign(**{"class": table["class"].fillna("overall").replace("", "overall")})
        overall = table[table["class"].isin(["macro", "positive", "overall"]) & table["metric"].isin(["auc", "accuracy"])]
        for row in overall.to_dict("records"):
            rows.append({"run": name, **{key: row[key] for key in ("part", "level", "metric", "class")},
                         **{key: round(float(row[key]), 3) for key in ("value", "ci_low", "ci_high")}})
    return pd.DataFrame(rows).sort_values(["part", "level", "metric", "run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("sheet", type=Path)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: every core; on a shared "
                        "machine 1 avoids OpenMP's spin-waits)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--positive", nargs="*", default=[], help="classes of the binary question, as the run's")
    parser.add_argument("--labels", nargs="*", default=None, help="class order, as the run's config (default: sorted)")
    parser.add_argument("--frames", choices=["raw", "processed"], default="raw",
                        help="raw: decoded from the sheet's files (the baseline); processed: the run's own denoised "
                             "frames (scan-area crop, denoise), to tell sonoflow's input from its recipe")
    args = parser.parse_args()
    baseline = run(args.run_dir, args.sheet, args.model, args.epochs, args.size, args.positive, args.labels, args.threads,
                   args.frames)
    name = args.model if args.frames == "raw" else f"{args.model}_{args.frames}"
    table = comparison(args.run_dir, baseline, name)
    save_csv(args.run_dir / "results" / "baseline" / name / "comparison.csv", table)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
