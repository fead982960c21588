"""Training and inference throughput: sonoflow's loops vs a bare PyTorch loop, model by model.

For each model (the default classifier efficientnet_lite0, resnet18, two of the studies'
backbones resnet50 and densenet121, and the smp U-Net with the default encoder) the same
architecture, input size, batch size and thread count run through

- the bare loop, the ceiling: pre-normalised float tensors in memory, forward, loss, backward,
  step (inference: forward only, under no_grad);
- sonoflow's loop: ``train_classifier`` / ``train_segmenter`` for one epoch from uint8 frames with
  its own batching, normalisation and bookkeeping (validation excluded from the timing, as the
  history's ``images_per_s`` records it); inference through ``predict_proba`` / ``predict_masks``.

Repetitions are interleaved (bare, sonoflow, then sonoflow, bare, ...), so drift in the machine's
load hits both alike; the best of each is compared. Prints images/s and the ratio (goal >= 0.9,
augmentation off: it is extra work the bare loop does not do; ``--augment`` adds that row).

    python benchmarks/bench_train.py [--models efficientnet_lite0 resnet18 resnet50 densenet121 unet]
        [--size 128] [--batch 16] [--images 64] [--repeats 2] [--threads 2] [--augment] [--clock cpu]

On a machine other processes share, wall-clock figures swing by tens of percent from one second
to the next; ``--clock cpu --threads 1`` times every loop (the bare ones and sonoflow's own
per-epoch timing alike) by this process's CPU time instead, which the other load barely moves.
"""

from __future__ import annotations

import argparse
import time
import types
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from sonoflow.loop import pick_device
from sonoflow.models import build_model
from sonoflow.segment import DiceBCELoss, SegmentSettings, build_unet, predict_masks, train_segmenter
from sonoflow.train import AugmentSettings, GRAY_MEAN, GRAY_STD, TrainSettings, predict_proba, train_classifier

NO_AUGMENT = AugmentSettings(hflip=0, rotate=0, translate=0, scale=0, brightness=0, contrast=0)
UNET = "unet"
DEFAULT_MODELS = ["efficientnet_lite0", "resnet18", "resnet50", "densenet121", UNET]
INFER_PASSES = 4  # inference is cheap: it runs over the frames this many times, for a timing window above noise


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepared(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    return ((torch.from_numpy(frames).float() / 255 - GRAY_MEAN) / GRAY_STD).unsqueeze(1).to(device)


def bare_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch: int,
               device: torch.device) -> float:
    """images/s of the plainest training loop: everything prepared in memory beforehand. Its
    AdamW uses torch's fused kernel, as sonoflow's loops do, so the ratio is the loop's own cost
    (``benchmarks/bench_optimizer.py`` times the kernel against torch's default)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type in ("cpu", "cuda"))
    model.train()
    order = torch.randperm(len(x), device=device)
    synchronize(device)
    started, seen = time.perf_counter(), 0
    for start in range(0, len(x) - batch + 1, batch):
        index = order[start : start + batch]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(x[index]).float(), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(index)
    synchronize(device)
    return seen / (time.perf_counter() - started)


@torch.no_grad()
def bare_infer(model: nn.Module, x: torch.Tensor, batch: int, device: torch.device) -> float:
    """images/s of plain forward passes over prepared tensors (outputs left on the device)."""
    model.eval()
    synchronize(device)
    started = time.perf_counter()
    for start in range(0, len(x), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model(x[start : start + batch])
    synchronize(device)
    return len(x) / (time.perf_counter() - started)


def timed(function, device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


class Classifier:
    """One registry model: sonoflow's train_classifier / predict_proba against the bare loop."""

    def __init__(self, name: str, frames: np.ndarray, size: int, batch: int, device: torch.device, augment: bool):
        self.name, self.frames, self.size, self.batch, self.device = name, frames, size, batch, device
        self.labels = (np.arange(len(frames)) % 2).astype(np.int64)
        self.settings = TrainSettings(model=name, input_size=size, epochs=1, batch_size=batch, seed=0,
                                      scheduler="none", class_weighting="none", augment=NO_AUGMENT)
        self.augmented = replace(self.settings, augment=AugmentSettings()) if augment else None
        self.x, self.y = prepared(frames, device), torch.from_numpy(self.labels).to(device)

    def fresh(self) -> nn.Module:
        torch.manual_seed(0)
        return build_model(self.name, 2, in_channels=1, input_size=self.size).to(self.device)

    def bare_train(self) -> float:
        return bare_train(self.fresh(), self.x, self.y, nn.CrossEntropyLoss(), self.batch, self.device)

    def sonoflow_train(self, settings: TrainSettings | None = None) -> float:
        result = train_classifier(self.fresh(), self.frames, self.labels, self.frames[:8], self.labels[:8], 2,
                                  settings or self.settings)
        return float(result.history["images_per_s"].iloc[0])

    def bare_infer(self, model: nn.Module) -> float:
        return bare_infer(model, self.x.repeat(INFER_PASSES, 1, 1, 1), self.batch, self.device)

    def sonoflow_infer(self, model: nn.Module) -> float:
        frames = np.tile(self.frames, (INFER_PASSES, 1, 1))
        return len(frames) / timed(lambda: predict_proba(model, frames, self.size, self.batch, self.device), self.device)


class Segmenter(Classifier):
    """The smp U-Net (default encoder and decoder): train_segmenter / predict_masks vs the bare loop."""

    def __init__(self, frames: np.ndarray, size: int, batch: int, device: torch.device):
        self.name, self.frames, self.size, self.batch, self.device = UNET, frames, size, batch, device
        rng = np.random.default_rng(1)
        self.masks = (rng.random(frames.shape) < 0.2).astype(np.uint8)
        self.settings = SegmentSettings(input_size=size, epochs=1, batch_size=batch, seed=0, augment=NO_AUGMENT,
                                        steps_per_epoch=len(frames) // batch)
        self.augmented = None
        self.x, self.y = prepared(frames, device), torch.from_numpy(self.masks).float().unsqueeze(1).to(device)

    def fresh(self) -> nn.Module:
        torch.manual_seed(0)
        return build_unet(self.settings.encoder, 1, **self.settings.architecture).to(self.device)

    def bare_train(self) -> float:
        return bare_train(self.fresh(), self.x, self.y, DiceBCELoss(), self.batch, self.device)

    def sonoflow_train(self, settings=None) -> float:
        result = train_segmenter(self.frames, self.masks, self.frames[:2], self.masks[:2], self.settings)
        return float(result.history["images_per_s"].iloc[0])

    def sonoflow_infer(self, model: nn.Module) -> float:
        frames = np.tile(self.frames, (INFER_PASSES, 1, 1))
        return len(frames) / timed(lambda: predict_masks(model, frames, self.settings, self.batch, self.device),
                                   self.device)


def measure(bench: Classifier, repeats: int) -> dict[str, float]:
    """Best images/s of each loop over interleaved repetitions (alternating which goes first)."""
    bench.bare_train()  # warm-up: first-call allocations and kernel choices
    runs: dict[str, list[float]] = {"bare_train": [], "sonoflow_train": [], "bare_infer": [], "sonoflow_infer": [],
                                    "sonoflow_augment": []}
    model = bench.fresh()
    for repeat in range(repeats):
        pairs = [("bare_train", bench.bare_train), ("sonoflow_train", bench.sonoflow_train),
                 ("bare_infer", lambda: bench.bare_infer(model)), ("sonoflow_infer", lambda: bench.sonoflow_infer(model))]
        if repeat % 2:
            pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
        for name, run in pairs:
            runs[name].append(run())
        if bench.augmented is not None:
            runs["sonoflow_augment"].append(bench.sonoflow_train(bench.augmented))
    return {name: max(values) for name, values in runs.items() if values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--augment", action="store_true", help="also time sonoflow's loop with augmentation")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this process's CPU time (use with --threads 1 on a shared machine)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.clock == "cpu":  # every timer in this run, sonoflow's loops' included, reads CPU seconds
        import sonoflow.loop

        global time
        time = types.SimpleNamespace(perf_counter=time.process_time)
        sonoflow.loop.time = time
    device = pick_device("auto")
    frames = np.random.default_rng(0).integers(0, 255, (args.images, args.size, args.size), dtype=np.uint8)
    print(f"device={device.type} size={args.size} batch={args.batch} images={args.images} "
          f"threads={torch.get_num_threads()} repeats={args.repeats} clock={args.clock} (best of each, interleaved)")
    header = f"{'model':<20} {'train bare':>10} {'sonoflow':>9} {'ratio':>6}   {'infer bare':>10} {'sonoflow':>9} {'ratio':>6}"
    print(header + ("   augment ratio" if args.augment else ""))
    worst = np.inf
    for name in args.models:
        bench = (Segmenter(frames, args.size, args.batch, device) if name == UNET
                 else Classifier(name, frames, args.size, args.batch, device, args.augment))
        best = measure(bench, args.repeats)
        train_ratio = best["sonoflow_train"] / best["bare_train"]
        infer_ratio = best["sonoflow_infer"] / best["bare_infer"]
        worst = min(worst, train_ratio, infer_ratio)
        line = (f"{name:<20} {best['bare_train']:>10.1f} {best['sonoflow_train']:>9.1f} {train_ratio:>6.3f}   "
                f"{best['bare_infer']:>10.1f} {best['sonoflow_infer']:>9.1f} {infer_ratio:>6.3f}")
        if "sonoflow_augment" in best:
            line += f"   {best['sonoflow_augment'] / best['bare_train']:>6.3f}"
        print(line, flush=True)
    print(f"images/s; lowest ratio {worst:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
