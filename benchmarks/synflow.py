"""Benchmark of iterative SynFlow (``sg.prune(model, "synflow", ...)``).

ResNet-18 at 224x224 (``sg.build_model("resnet18")``), ``rounds`` rounds (default 100) to
density 0.01 on the exponential schedule, against ``rounds`` dense float32 forward+backward
passes of the same torch model at batch size 1 (eval mode, ``model(x).sum().backward()``), the
cost a plain autograd implementation pays every round. Both use torch's default thread count.
Measured in the same run as baseline, SynFlow, baseline again: the baseline is the mean of the
two, so a change of load on a shared machine hits both alike. The trace (cached) and the first
call's kernel load are outside neither: the SynFlow figure is the wall time of one ``sg.prune``
call, as a user sees it.

Beside it, what the arithmetic alone costs. The sum over rounds of the kept fraction of the
weights is the number of dense passes' worth of weights a pruner that thins with the network
scores. A pass costs multiply-adds, though, and SynFlow keeps the early layers, which do most of
them (a weight of the stem is applied at 112x112 positions, one of the last stage at 7x7), far
denser than the rest: the sum over rounds of the kept weights' multiply-adds (each kept weight
times the positions its layer is applied at, over a dense pass's) is the number of dense passes'
worth of products an exact pruner that computed nothing but the kept weights' products would do.
The walk does less on the layers applied at >= 1/16 of the input's positions (the stem and first
stage of a ResNet): their tensors have equal rows and columns away from the borders, so their
forward and weight-gradient products run over one position per class. Counting those two of
the three products as free, and the rest at dense float64 speed (the float64/float32 time ratio
of a matrix product, measured here), gives ``floor``: a ratio no exact float64 implementation
reaches without leaving out products of kept weights.

Target: ``synflow / dense <= 0.5`` (issue 13).

Run: ``python benchmarks/synflow.py [--model resnet18] [--rounds 100] [--density 0.01]``.
"""

from __future__ import annotations

import argparse
import math
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


def gemm_ratio() -> float:
    """Time of a float64 over a float32 matrix product (1024 x 1024 by 1024 x 196), median of
    five pairs: how much dearer float64 arithmetic is here."""
    ratios = []
    for _ in range(5):
        ts = []
        for dt in (torch.float64, torch.float32):
            a, b = torch.rand(1024, 1024, dtype=dt), torch.rand(1024, 196, dtype=dt)
            a @ b
            t0 = time.perf_counter()
            for _ in range(20):
                a @ b
            ts.append(time.perf_counter() - t0)
        ratios.append(ts[0] / ts[1])
    return float(np.median(ratios))


def record_rounds() -> list[list[int]]:
    """Record, every round, the kept count of each layer (wraps the private flow function the
    pruner calls once per round; it adds nothing measurable)."""
    from sparsegraph.pytorch import synflow as sf

    seen: list[list[int]] = []
    flow = sf._flow

    def wrapped(net_, weights, kept=None):
        seen.append([k.size for k in kept])
        return flow(net_, weights, kept)

    sf._flow = wrapped
    return seen


def macs_per_weight(net: sg.Network) -> np.ndarray:
    """Per layer, the multiply-adds one weight does in a forward pass (the positions every use
    of the layer is applied at)."""
    out = np.zeros(len(net.layers))
    for node in net.nodes:
        if node.kind == "layer":
            shape = node.shape
            conv = node.params.get("op") == "conv"
            out[node.layer] += math.prod(shape[1:] if conv else shape[:-1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--density", type=float, default=0.01)
    args = parser.parse_args(argv)

    model, x = sg.build_model(args.model)
    net = sg.trace(model, x)  # cached per model: a user's second call does not pay it
    params = np.array([layer.params for layer in net.layers], dtype=np.float64)
    total = int(params.sum())
    per_weight = macs_per_weight(net)
    rounds_kept = record_rounds()

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
    kept_w = [sum(r) / total for r in rounds_kept]
    kept_macs = [float(np.dot(r, per_weight)) / float(np.dot(params, per_weight))
                 for r in rounds_kept]
    wide = per_weight >= math.prod(x.shape[2:]) / 16  # where the equal-row classes apply
    kept_wide = [float(np.dot(np.asarray(r)[wide], per_weight[wide])) /
                 float(np.dot(params, per_weight)) for r in rounds_kept]
    f64 = gemm_ratio()
    floor = (sum(kept_macs) - 2 / 3 * sum(kept_wide)) * f64 / args.rounds

    print(f"{args.model} ({total:,} prunable weights), {args.rounds} rounds to density "
          f"{args.density}; torch threads: {torch.get_num_threads()}")
    print(f"kept: {kept:,} ({kept / total:.4f}); over the rounds the scored weights add up to "
          f"{sum(kept_w):.1f} dense passes' worth, their multiply-adds to {sum(kept_macs):.1f}")
    print(f"  ({sum(kept_wide):.1f} of them on layers applied at >= 1/16 of the input's "
          f"positions); float64 / float32 matrix product here: {f64:.2f}x")
    print(f"floor for exact float64 scores: {floor:.2f} of the dense passes (the kept weights' "
          "products only, 2 of 3 free on those layers, at dense float64 speed)")
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
