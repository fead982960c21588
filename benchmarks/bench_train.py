"""Training throughput: sonoflow's loop vs a bare PyTorch loop, same model, batch and input size.

The bare loop is the ceiling: pre-normalised float tensors in memory, forward, backward, step.
sonoflow's loop starts from uint8 frames and does its own batching, normalisation and (in the
second comparison) per-sample augmentation. Both run in this process, interleaved, so machine
noise hits both. Prints images/s and the ratio (goal >= 0.9 without augmentation).

    python benchmarks/bench_train.py [--model resnet18] [--size 128] [--batch 32] [--images 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from sonoflow.models import build_model
from sonoflow.train import AugmentSettings, GRAY_MEAN, GRAY_STD, TrainSettings, pick_device, train_classifier

NO_AUGMENT = AugmentSettings(hflip=0, rotate=0, translate=0, scale=0, brightness=0, contrast=0)


def bare_loop(model: nn.Module, frames: np.ndarray, labels: np.ndarray, batch: int, device: torch.device) -> float:
    """images/s of the plainest loop: everything prepared in memory beforehand."""
    x = ((torch.from_numpy(frames).float() / 255 - GRAY_MEAN) / GRAY_STD).unsqueeze(1).to(device)
    y = torch.from_numpy(labels).long().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    order = torch.randperm(len(x), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    seen = 0
    for start in range(0, len(x) - batch + 1, batch):
        index = order[start : start + batch]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(x[index]).float(), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - started)


def sonoflow_loop(model: nn.Module, frames, labels, settings: TrainSettings) -> float:
    """images/s of one epoch of sonoflow's training loop (validation excluded from the timing)."""
    result = train_classifier(model, frames, labels, frames[:8], labels[:8], 2, settings)
    return float(result.history["images_per_s"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    device = pick_device("auto")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (args.images, args.size, args.size), dtype=np.uint8)
    labels = (np.arange(args.images) % 2).astype(np.int64)
    settings = TrainSettings(model=args.model, input_size=args.size, epochs=1, batch_size=args.batch, seed=0,
                             scheduler="none", class_weighting="none", augment=NO_AUGMENT)
    augmented = TrainSettings(**{**settings.__dict__, "augment": AugmentSettings()})

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return build_model(args.model, 2, in_channels=1, input_size=args.size).to(device)

    bare_loop(fresh(), frames[: args.batch * 2], labels[: args.batch * 2], args.batch, device)  # warm-up
    bare, plain, augment = [], [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits all three
        bare.append(bare_loop(fresh(), frames, labels, args.batch, device))
        plain.append(sonoflow_loop(fresh(), frames, labels, settings))
        augment.append(sonoflow_loop(fresh(), frames, labels, augmented))
    bare_best, plain_best, augment_best = max(bare), max(plain), max(augment)
    print(f"device={device.type} model={args.model} size={args.size} batch={args.batch} images={args.images} "
          f"threads={torch.get_num_threads()}")
    print(f"bare PyTorch loop        {bare_best:8.1f} images/s")
    print(f"sonoflow loop            {plain_best:8.1f} images/s   ratio {plain_best / bare_best:.3f} (goal >= 0.9)")
    print(f"sonoflow loop + augment  {augment_best:8.1f} images/s   ratio {augment_best / bare_best:.3f}")


if __name__ == "__main__":
    main()
