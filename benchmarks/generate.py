"""Benchmark random mask generation (sparsegraph.masks.sampling).

1. ERK masks for ResNet-50 at density 0.01 (dense bool masks, every layer): sparsegraph vs two
   exact samplers a user would write -- ``torch.randperm`` per layer and numpy's
   ``Generator.choice(n, k, replace=False)`` per layer, each writing a bool mask. Median of
   repeated runs after one warm-up (numba compile reported separately). Target: >= 1.5x faster
   than the numpy sampler.
2. A 1e9-parameter MLP (a Network built by hand, no torch model) at density 0.001 in sparse
   form, in a fresh subprocess: wall time and peak resident memory (ru_maxrss, interpreter and
   imports included). Targets: <= 60 s and <= 4 GiB on 2 cores.

Run: ``python benchmarks/generate.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def resnet50_erk(repeats: int) -> bool:
    import torch

    from sparsegraph.graph.trace import trace
    from sparsegraph.masks.quotas import quota_counts, quotas
    from sparsegraph.masks.sampling import random_masks
    from sparsegraph.pytorch.models import build_model

    net = trace(*build_model("resnet50"))
    q = quotas(net, "erk", 0.01)
    counts = quota_counts(net, q)

    def ours():
        return random_masks(net, q, seed=0)

    def ours_sparse():
        return random_masks(net, q, seed=0, sparse=True)

    def numpy_choice():
        seeds = np.random.SeedSequence(0).spawn(len(net.layers))
        out = {}
        for layer, seq in zip(net.layers, seeds, strict=True):
            rng = np.random.default_rng(seq)
            mask = np.zeros(layer.params, dtype=bool)
            mask[rng.choice(layer.params, counts[layer.name], replace=False)] = True
            out[layer.name] = mask.reshape(layer.shape)
        return out

    def torch_randperm():
        gen = torch.Generator().manual_seed(0)
        out = {}
        for layer in net.layers:
            mask = torch.zeros(layer.params, dtype=torch.bool)
            mask[torch.randperm(layer.params, generator=gen)[: counts[layer.name]]] = True
            out[layer.name] = mask.reshape(layer.shape)
        return out

    t = time.perf_counter()
    ours()
    ours_sparse()
    first = time.perf_counter() - t
    numpy_choice()
    torch_randperm()
    t_ours = _median_time(ours, repeats)
    t_sparse = _median_time(ours_sparse, repeats)
    t_np = _median_time(numpy_choice, repeats)
    t_torch = _median_time(torch_randperm, max(3, repeats // 2))
    kept = sum(counts.values())
    print(f"ResNet-50, ERK, density 0.01: {len(net.layers)} layers, {net.params:,} weights, "
          f"{kept:,} kept; torch {torch.__version__}, numpy {np.__version__}")
    print(f"  first call (numba load/compile + run, dense and sparse): {first * 1e3:8.1f} ms")
    print(f"  sparsegraph random_masks (bool)       {t_ours * 1e3:8.1f} ms")
    print(f"  sparsegraph random_masks (sparse)     {t_sparse * 1e3:8.1f} ms")
    print(f"  numpy Generator.choice per layer      {t_np * 1e3:8.1f} ms   "
          f"ratio {t_np / t_ours:5.2f}x")
    print(f"  torch.randperm per layer              {t_torch * 1e3:8.1f} ms   "
          f"ratio {t_torch / t_ours:5.2f}x")
    ok = t_np / t_ours >= 1.5
    print(f"  target >= 1.5x faster than numpy: {'PASS' if ok else 'MISS'}")
    return ok


CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from sparsegraph.graph.network import Layer, Network
    from sparsegraph.masks.quotas import quotas
    from sparsegraph.masks.sampling import random_masks
    width, depth, density = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    layers = tuple(Layer(f"fc{i}.weight", f"fc{i}", "linear", (width, width), width, width)
                   for i in range(depth))
    net = Network(layers, (), (), name="mlp1e9")
    t1 = time.perf_counter()
    q = quotas(net, "erk", density)
    masks = random_masks(net, q, seed=0, sparse=True)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"params": net.params, "kept": masks.kept, "sample_s": t2 - t1,
                      "total_s": t2 - t0, "peak_bytes": rss}))
    """
)


def billion_mlp() -> bool:
    width, depth, density = 15_812, 4, 0.001
    env = dict(os.environ, OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(width), str(depth), str(density)],
                          capture_output=True, text=True, env=env, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    gib = r["peak_bytes"] / 2**30
    print(f"MLP {depth} x ({width} x {width}) = {r['params']:,} weights, ERK density {density}, "
          f"sparse form: {r['kept']:,} kept")
    print(f"  quotas + sampling {r['sample_s']:6.2f} s; with interpreter start and imports "
          f"{r['total_s']:6.2f} s; peak RSS {gib:5.2f} GiB")
    ok = r["total_s"] <= 60 and gib <= 4
    print(f"  target <= 60 s and <= 4 GiB: {'PASS' if ok else 'MISS'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}")
    a = resnet50_erk(args.repeats)
    b = billion_mlp()
    return 0 if a and b else 1


if __name__ == "__main__":
    sys.exit(main())
