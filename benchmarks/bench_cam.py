"""Grad-CAM as sonoflow computes it (``sonoflow.cam.compute_cams``: autograd started at the target
layer, the weights frozen) vs pytorch-grad-cam's own pass (a full backward through the network and
into every weight), model by model and method by method, in the same run on the same images.

Each call is timed ``--repeats`` times after one warm-up call, the two interleaved; printed: seconds
per call, the ratio (plain over sonoflow's: above 1 is faster), and the largest difference of a map
value (maps lie in [0, 1]).

    python benchmarks/bench_cam.py [--models vgg16 resnet50 densenet121 efficientnet_lite0 vit_b_16]
        [--methods gradcam gradcam++ layercam] [--size 80] [--images 16] [--repeats 3] [--threads 1]
        [--clock cpu]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch

from sonoflow.cam import cam_methods, compute_cams
from sonoflow.models import build_model, cam_target

DEFAULT_MODELS = ["vgg16", "resnet50", "densenet121", "efficientnet_lite0", "vit_b_16"]


def plain_cams(model, name: str, x: torch.Tensor, classes, method: str) -> np.ndarray:
    """pytorch-grad-cam as its README calls it: one CAM object, all images in one batch."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layers, reshape = cam_target(model, name)
    with cam_methods()[method](model=model, target_layers=layers, reshape_transform=reshape) as cam:
        return np.nan_to_num(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++", "layercam"])
    parser.add_argument("--size", type=int, default=80, help="input px (80: the smallest every registry model takes)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: this process's CPU time (robust to other load on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"{args.images} images at {args.size} px, batch {args.images}, {args.threads} thread(s), {args.clock} clock")
    print(f"{'model':20s} {'method':10s} {'plain s':>8s} {'sonoflow s':>10s} {'ratio':>6s} {'max diff':>9s}")
    ratios = []
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, 2, in_channels=1, input_size=args.size).eval()
        x = torch.randn(args.images, 1, args.size, args.size)
        classes = [i % 2 for i in range(args.images)]
        for method in args.methods:
            calls = {"plain": partial(plain_cams, model, name, x, classes, method),
                     "sonoflow": partial(compute_cams, model, name, x, classes, method, batch_size=args.images)}
            maps = {key: call() for key, call in calls.items()}  # warm-up, and the maps compared
            seconds = {key: 0.0 for key in calls}
            for _ in range(args.repeats):
                for key, call in calls.items():
                    started = clock()
                    call()
                    seconds[key] += (clock() - started) / args.repeats
            ratio = seconds["plain"] / seconds["sonoflow"]
            ratios.append(ratio)
            diff = float(np.abs(maps["plain"] - maps["sonoflow"]).max())
            print(f"{name:20s} {method:10s} {seconds['plain']:8.3f} {seconds['sonoflow']:10.3f} {ratio:6.2f} {diff:9.1e}",
                  flush=True)
    print(f"ratio: lowest {min(ratios):.2f}, median {float(np.median(ratios)):.2f}, highest {max(ratios):.2f}")


if __name__ == "__main__":
    main()
