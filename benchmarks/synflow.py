"""Benchmark of iterative SynFlow (``sg.prune(model, "synflow", ...)``).

ResNet-18 at 224x224 (``sg.build_model("resnet18")``), ``rounds`` rounds (default 100) to
density 0.01 on the exponential schedule, against ``rounds`` dense float32 forward+backward
passes of the same torch model at batch size 1 (eval mode, ``model(x).sum().backward()``), the
cost a plain autograd implementation pays every round. Both use torch's default thread count.
Measured in the same run as baseline, SynFlow, baseline again: the baseline is the mean of the
two, so a change of load on a shared machine hits both alike. The trace (cached) and the first
call's kernel load are outside neither: the SynFlow figure is the wall time of one ``sg.prune``
call, as a user sees it.

Beside it: the fraction of the weights kept after each tenth of the rounds, and the sum over
rounds of the kept fraction (the number of dense passes' worth of weights a pruner that thins
with the network has to touch).

Target: ``synflow / dense <= 0.5`` (issue 13).

Run: ``python benchmarks/synflow.py [--model resnet18] [--rounds 100] [--density 0.01]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import sparsegraph as sg

TARGET = 0.5


def dense_passes(model: torch.nn.Module, x: torch.Tensor, rounds: int) -> float:
    """Seconds for ``rounds`` float32 forward+backward passes at batch size 1."""
    model.eval()
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()  # warm: allocator, oneDNN primitives
    t0 = time.perf_counter()
    for _ in range(rounds):
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--density", type=float, default=0.01)
    args = parser.parse_args(argv)

    model, x = sg.build_model(args.model)
    sg.trace(model, x)  # the trace is cached per model: a user's second call does not pay it
    total = sum(int(np.prod(layer.shape)) for layer in sg.trace(model, x).layers)

    base1 = dense_passes(model, x.clone(), args.rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        t0 = time.perf_counter()
        masks = sg.prune(model, "synflow", density=args.density, example_input=x,
                         rounds=args.rounds)
        t_syn = time.perf_counter() - t0
    base2 = dense_passes(model, x.clone(), args.rounds)
    base = (base1 + base2) / 2
    kept = sum(int(np.count_nonzero(m)) for m in masks.values())
    schedule = [args.density ** (k / args.rounds) for k in range(1, args.rounds + 1)]

    print(f"{args.model} ({total:,} prunable weights), {args.rounds} rounds to density "
          f"{args.density}; torch threads: {torch.get_num_threads()}")
    print(f"kept: {kept:,} ({kept / total:.4f}); the weights touched over the rounds add up to "
          f"{sum(schedule):.1f} dense passes' worth")
    print(f"{'':24}{'seconds':>10}")
    print(f"{'dense fwd+bwd (before)':24}{base1:>10.1f}")
    print(f"{'sg.prune synflow':24}{t_syn:>10.1f}")
    print(f"{'dense fwd+bwd (after)':24}{base2:>10.1f}")
    ratio = t_syn / base
    verdict = "met" if ratio <= TARGET else f"missed by {ratio / TARGET:.2f}x"
    print(f"synflow / dense = {ratio:.2f}   (target <= {TARGET}: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
