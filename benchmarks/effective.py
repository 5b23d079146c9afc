"""Benchmark of exact effective sparsity (:func:`sparsegraph.effective_masks`).

For ResNet-50 (224x224) and VGG-19 (CIFAR, 32x32) at densities 0.1 and 0.01 (random uniform
masks drawn here with numpy), measured in the same run:

- ``effective``: warm time of ``effective_masks`` (the first call in the process, which loads
  the cached numba kernels and builds the per-network plan, is reported separately);
- ``count_nonzero``: time of ``np.count_nonzero`` over the same masks (one read of every mask:
  the floor);
- ``autograd``: median time of the float32 SynFlow-style autograd computation on the torch
  model (0/1 weights, biases 0, BN/activations identity, all-ones input, gradient of the summed
  output, ``mask & (grad != 0)``; no rescaling; the model copy is prepared once, outside the
  timing; subnormals flushed to zero, which only makes it faster), i.e. the method this library
  replaces.

``effective`` and ``count_nonzero`` are timed in interleaved pairs (one of each, ``--repeats``
times), so that a change of load on a shared machine hits both alike; ``eff/cnt`` is the median
of the per-pair ratios, and the time columns are medians. ``--threads`` sets numba's thread
count (the kernels are serial; the figure shows that the result does not depend on it).

Targets: ``autograd / effective >= 5`` and ``effective / count_nonzero <= 3`` (issue 13).

Run: ``python benchmarks/effective.py [--repeats N] [--threads N] [--no-autograd]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference import prepare, synflow_grads  # noqa: E402

import sparsegraph as sg  # noqa: E402
from sparsegraph.metrics.effective import effective_masks  # noqa: E402

SPEEDUP_TARGET = 5.0  # autograd / effective at least
FLOOR_TARGET = 3.0  # effective / count_nonzero at most


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _pairs(fn_a, fn_b, repeats: int) -> tuple[float, float, float]:
    """Median times of ``fn_a`` and ``fn_b`` run in alternation, and the median of the
    per-pair ratios a / b."""
    ta, tb, ratios = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def _count(masks) -> int:
    return sum(np.count_nonzero(m) for m in masks.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--autograd-repeats", type=int, default=3)
    parser.add_argument("--no-autograd", action="store_true", help="skip the autograd baseline")
    parser.add_argument("--threads", type=int, default=None, help="numba threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba

        numba.set_num_threads(args.threads)
    # float32 autograd without rescaling produces subnormals; flushing them keeps the baseline
    # from being slowed down by them (a conservative, faster baseline)
    torch.set_flush_denormal(True)

    rows = []
    first = None
    for name in ("resnet50", "vgg19"):
        model, x = sg.build_model(name)
        net = sg.trace(model, x)
        work = None if args.no_autograd else prepare(model, torch.float32)
        for density in (0.1, 0.01):
            rng = np.random.default_rng(0)
            masks = {layer.name: rng.random(layer.shape) < density for layer in net.layers}
            t0 = time.perf_counter()
            effective_masks(net, masks)
            if first is None:
                first = time.perf_counter() - t0
            t_eff, t_cnt, ratio = _pairs(lambda net=net, masks=masks: effective_masks(net, masks),
                                         lambda masks=masks: _count(masks), args.repeats)
            t_ag = float("nan")
            if work is not None:
                def autograd(work=work, masks=masks, x=x):
                    grads = synflow_grads(work, masks, x, rescale=False)
                    return {n: masks[n] & (g.numpy() != 0) for n, g in grads.items()}

                autograd()
                t_ag = _median(autograd, args.autograd_repeats)
            rows.append((name, density, t_eff, t_ag, t_cnt, ratio))

    import numba

    print(f"first call of effective_masks in this process (kernel cache load + plan): "
          f"{first * 1e3:.1f} ms; numba threads: {numba.get_num_threads()}")
    head = (f"{'model':<9} {'density':>7} {'effective':>10} {'autograd':>10} {'count_nz':>9} "
            f"{'ag/eff':>7} {'>=5x':>5} {'eff/cnt':>8} {'<=3x':>5}")
    print(head)
    print("-" * len(head))
    for name, density, t_eff, t_ag, t_cnt, ratio in rows:
        speedup = t_ag / t_eff
        verdict = "-" if t_ag != t_ag else ("PASS" if speedup >= SPEEDUP_TARGET else "MISS")
        print(f"{name:<9} {density:>7g} {t_eff * 1e3:>8.2f}ms {t_ag * 1e3:>8.1f}ms "
              f"{t_cnt * 1e3:>7.2f}ms {speedup:>6.1f}x {verdict:>5} "
              f"{ratio:>7.2f}x {'PASS' if ratio <= FLOOR_TARGET else 'MISS':>5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
