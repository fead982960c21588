"""The CUDA path, measured: one fold of resnet50 at 224 px and one U-Net, on generated data.

Run through ``benchmarks/gpu_check.sh`` (which checks the machine first). Each phase runs
sonoflow's own training loops (``train_classifier``, ``train_segmenter``: frames on the device,
bf16 autocast, channels_last, cudnn.benchmark) and prints images/s, the GPU's utilisation sampled
by ``nvidia-smi`` every second while the phase trains (mean and 10th percentile), the peak GPU
memory, and the same loop's images/s on the CPU for the ratio.

    python benchmarks/gpu_check.py [--images 8192] [--epochs 4] [--cpu-images 64]
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time

import numpy as np
import torch

from sonoflow.models import build_model
from sonoflow.segment import SegmentSettings, train_segmenter
from sonoflow.train import TrainSettings, train_classifier


class UtilisationSampler:
    """``nvidia-smi`` every ``interval`` seconds in a thread: GPU utilisation (%) of one device."""

    def __init__(self, device_index: int, interval: float = 1.0):
        self.device_index, self.interval = device_index, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            out = subprocess.run(["nvidia-smi", "-i", str(self.device_index), "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.strip().splitlines()[0]))

    def __enter__(self) -> "UtilisationSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "utilisation: no nvidia-smi sample (phase shorter than 1 s?)"
        values = np.array(self.samples)
        return (f"GPU utilisation mean {values.mean():.0f}% p10 {np.percentile(values, 10):.0f}% "
                f"({len(values)} samples, 1/s)")


def classifier_data(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose class is a brighter disc or not: something to learn, so the loop is real."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 200, (n, size, size), dtype=np.uint8)
    labels = (np.arange(n) % 2).astype(np.int64)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2
    frames[labels == 1] = np.where(disc, np.minimum(frames[labels == 1].astype(np.int16) + 55, 255), frames[labels == 1])
    return frames, labels


def segmenter_data(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy frames with one darker ellipse each, and its mask."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 200, (n, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for index in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.08, 0.2, 2) * size
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        masks[index] = inside
        frames[index][inside] //= 3
    return frames, masks


def classifier_phase(device: str, images: int, epochs: int, size: int, batch: int) -> float:
    """Images/s of sonoflow's classifier loop (training epochs only, as the history records it)."""
    frames, labels = classifier_data(images + max(images // 8, 8), size)
    settings = TrainSettings(model="resnet50", input_size=size, epochs=epochs, batch_size=batch, patience=epochs,
                             device=device, seed=0, class_weighting="balanced")
    torch.manual_seed(0)
    model = build_model("resnet50", 2, in_channels=1, input_size=size)
    result = train_classifier(model, frames[:images], labels[:images], frames[images:], labels[images:], 2, settings)
    rates = result.history["images_per_s"].to_numpy()
    return float(np.median(rates[1:] if len(rates) > 1 else rates))  # the first epoch includes cudnn autotuning


def segmenter_phase(device: str, images: int, epochs: int, size: int, batch: int) -> float:
    """Images/s of sonoflow's U-Net loop (smp, the default encoder), from its per-epoch seconds."""
    frames, masks = segmenter_data(images + 16, size)
    steps = max(images // batch, 1)
    settings = SegmentSettings(input_size=size, epochs=epochs, steps_per_epoch=steps, batch_size=batch,
                               patience=epochs, device=device, seed=0)
    result = train_segmenter(frames[:images], masks[:images], frames[images:], masks[images:], settings)
    rates = result.history["images_per_s"].to_numpy()  # training steps only, validation excluded
    return float(np.median(rates[1:] if len(rates) > 1 else rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8192, help="classifier training frames on the GPU")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--unet-images", type=int, default=2048)
    parser.add_argument("--unet-size", type=int, default=256)
    parser.add_argument("--unet-batch", type=int, default=32)
    parser.add_argument("--cpu-images", type=int, default=64, help="frames for the CPU comparison (kept short)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: FAILED: torch sees no CUDA device (torch.cuda.is_available() is False)")

    index = torch.cuda.current_device()
    print(f"device: {torch.cuda.get_device_name(index)}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}; CPU threads {torch.get_num_threads()}", flush=True)
    rows = []
    for name, phase, gpu_kw, cpu_kw in (
        ("resnet50 fold", classifier_phase,
         dict(images=args.images, epochs=args.epochs, size=args.size, batch=args.batch),
         dict(images=args.cpu_images, epochs=1, size=args.size, batch=min(args.batch, 32))),
        ("U-Net (smp resnet18)", segmenter_phase,
         dict(images=args.unet_images, epochs=args.epochs, size=args.unet_size, batch=args.unet_batch),
         dict(images=args.cpu_images, epochs=1, size=args.unet_size, batch=min(args.unet_batch, 16))),
    ):
        torch.cuda.reset_peak_memory_stats(index)
        started = time.perf_counter()
        with UtilisationSampler(index) as sampler:
            gpu_rate = phase("cuda", **gpu_kw)
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated(index) / 2**30
        cpu_rate = phase("cpu", **cpu_kw)
        rows.append((name, float(np.mean(sampler.samples)) if sampler.samples else float("nan")))
        print(f"{name}: GPU {gpu_rate:.0f} images/s (training), CPU {cpu_rate:.1f} images/s, ratio "
              f"{gpu_rate / cpu_rate:.0f}x; {sampler.summary()}; peak GPU memory {peak:.2f} GiB; "
              f"phase {seconds:.0f} s", flush=True)
    for name, mean in rows:
        verdict = "met" if mean >= 85 else "NOT met"
        print(f"goal GPU >= 85% busy while training, {name}: {verdict} (mean {mean:.0f}%)")


if __name__ == "__main__":
    main()
