"""The optimiser's step: torch's default implementation vs the fused kernel sonoflow's loops use
(``sonoflow.loop.make_optimizer``), model by model, in the same run.

For each model, one forward and backward pass of a batch (after a warm-up pass) gives real
gradients and the pass's time; then the step of
each optimiser (AdamW, SGD with momentum; default and fused) is timed over ``--steps`` steps after
one warm-up step (the first allocates the optimiser's state), the variants interleaved. Printed:
seconds per step, the fused kernel's speed-up, and the step's share of a whole training step
(forward, backward, step) with each.

    python benchmarks/bench_optimizer.py [--models vgg16 resnet50 densenet121 efficientnet_lite0]
        [--size 64] [--batch 16] [--steps 3] [--threads 1] [--clock cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from sonoflow.loop import make_optimizer
from sonoflow.models import build_model

DEFAULT_MODELS = ["vgg16", "resnet50", "densenet121", "efficientnet_lite0"]
OPTIMISERS = {
    "adamw": lambda params, fused: torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4, fused=fused),
    "sgd": lambda params, fused: torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4, fused=fused),
}


def seconds_per_step(optimizer: torch.optim.Optimizer, steps: int, clock) -> float:
    optimizer.step()  # warm-up: allocates the state
    started = clock()
    for _ in range(steps):
        optimizer.step()
    return (clock() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu",
                        help="cpu: this process's CPU time (with --threads 1 on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"CPU, size={args.size} batch={args.batch} threads={args.threads} steps={args.steps} clock={args.clock}")
    print(f"{'model':<20} {'params':>7} {'fwd+bwd s':>9} {'optimiser':<9} {'default s':>9} {'fused s':>8} "
          f"{'speed-up':>8} {'step share default -> fused':>28}")
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, 2, in_channels=1, input_size=args.size)
        x, y = torch.randn(args.batch, 1, args.size, args.size), torch.arange(args.batch) % 2
        torch.nn.functional.cross_entropy(model(x), y).backward()  # warm-up: first touch of the buffers
        model.zero_grad(set_to_none=False)
        started = clock()
        torch.nn.functional.cross_entropy(model(x), y).backward()  # the gradients every step reuses
        forward_backward = clock() - started
        params = sum(p.numel() for p in model.parameters()) / 1e6
        assert make_optimizer("adamw", model.parameters(), lr=1e-4, weight_decay=0).param_groups[0]["fused"]
        for optimiser, make in OPTIMISERS.items():
            timings = {}
            for fused in (None, True, None, True):  # interleaved; the best of two each
                seconds = seconds_per_step(make(model.parameters(), fused), args.steps, clock)
                timings[fused] = min(timings.get(fused, seconds), seconds)
            default, fast = timings[None], timings[True]
            share_default, share_fast = (step / (forward_backward + step) for step in (default, fast))
            print(f"{name:<20} {params:>6.1f}M {forward_backward:>9.2f} {optimiser:<9} {default:>9.3f} {fast:>8.3f} "
                  f"{default / fast:>7.1f}x {share_default:>18.0%} -> {share_fast:.0%}", flush=True)


if __name__ == "__main__":
    main()
