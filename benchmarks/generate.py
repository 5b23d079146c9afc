"""Benchmark random mask generation (sparsegraph.masks.sampling).

1. ERK masks for ResNet-50 (``sg.build_model("resnet50")``, traced) at densities 0.1 and 0.01,
   dense bool masks of every layer: ``sg.random_masks`` against the exact sampler a user would
   write with numpy -- ``Generator.choice(n, k, replace=False)`` per layer on the same
   ``SeedSequence(0).spawn`` child streams, writing a bool mask. Timed as interleaved A/B pairs
   (pair ``i`` runs ours first when ``i`` is even, numpy first when odd; each result freed
   before the next call), so page faults and the allocator's state hit both alike; the figure
   is the median over pairs of (numpy time / our time). Both are warmed first; the first call
   of ours in this process (numba cache load or compile, then the run) is reported apart.
   Target: >= 2x. Beside it: our sparse form, and the floor of writing the masks' bytes once
   (``np.empty`` + clear of every layer), measured in the same run.
   Single-threaded: the sampler uses one core (a thread pool over layers did not pay on the
   shared 2-core machine it was written on; see the module docstring of the sampler).
2. A 1e9-parameter MLP (a Network built by hand, no torch model) at density 0.001 in sparse
   form, in a fresh subprocess: wall time and peak resident memory (ru_maxrss, interpreter and
   imports included). Targets: <= 60 s and <= 4 GiB.

Run: ``python benchmarks/generate.py [--pairs 11]``.
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

TARGET = 2.0


def ab_pairs(fa, fb, pairs: int) -> tuple[list[float], list[float]]:
    """Interleaved timings of ``fa`` and ``fb``: ``pairs`` pairs, alternating which runs first."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(pairs):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            fn = (fa, fb)[which]
            t = time.perf_counter()
            out = fn()
            times[which].append(time.perf_counter() - t)
            del out
    return times


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    return statistics.median(times)


def resnet50_erk(pairs: int) -> bool:
    from sparsegraph.graph.trace import trace
    from sparsegraph.masks.quotas import quota_counts, quotas
    from sparsegraph.masks.sampling import random_masks
    from sparsegraph.pytorch.models import build_model

    net = trace(*build_model("resnet50"))
    print(f"ResNet-50: {len(net.layers)} layers, {net.params:,} weights; numpy {np.__version__}; "
          f"{pairs} interleaved A/B pairs")
    ok = True
    first_done = False
    for density in (0.1, 0.01):
        q = quotas(net, "erk", density)
        counts = quota_counts(net, q)

        def ours(q=q):
            return random_masks(net, q, seed=0)

        def ours_sparse(q=q):
            return random_masks(net, q, seed=0, sparse=True)

        def numpy_choice(counts=counts):
            seeds = np.random.SeedSequence(0).spawn(len(net.layers))
            out = {}
            for layer, seq in zip(net.layers, seeds, strict=True):
                rng = np.random.default_rng(seq)
                mask = np.zeros(layer.params, dtype=bool)
                mask[rng.choice(layer.params, counts[layer.name], replace=False)] = True
                out[layer.name] = mask.reshape(layer.shape)
            return out

        def write_floor():
            out = {}
            for layer in net.layers:
                mask = np.empty(layer.params, dtype=bool)
                mask.fill(False)
                out[layer.name] = mask.reshape(layer.shape)
            return out

        if not first_done:
            t = time.perf_counter()
            ours()
            print(f"  first call in this process (numba cache load/compile + run): "
                  f"{(time.perf_counter() - t) * 1e3:8.1f} ms")
            first_done = True
        ours()
        ours_sparse()
        numpy_choice()
        write_floor()
        t_ours, t_np = ab_pairs(ours, numpy_choice, pairs)
        ratios = [b / a for a, b in zip(t_ours, t_np, strict=True)]
        ratio = statistics.median(ratios)
        t_sparse = median_time(ours_sparse, pairs)
        t_floor = median_time(write_floor, pairs)
        kept = sum(counts.values())
        hit = ratio >= TARGET
        ok &= hit
        print(f"  ERK density {density}: {kept:,} kept")
        print(f"    sparsegraph random_masks (bool)    {statistics.median(t_ours) * 1e3:8.2f} ms")
        print(f"    numpy Generator.choice per layer   {statistics.median(t_np) * 1e3:8.2f} ms")
        print(f"    median pair ratio {ratio:5.2f}x (pairs {min(ratios):.2f}x .. "
              f"{max(ratios):.2f}x)   target >= {TARGET:.0f}x: {'PASS' if hit else 'MISS'}")
        print(f"    sparsegraph random_masks (sparse)  {t_sparse * 1e3:8.2f} ms")
        print(f"    floor: clear every layer's bytes   {t_floor * 1e3:8.2f} ms "
              f"(ours is {statistics.median(t_ours) / t_floor:4.2f}x the floor)")
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
    net = Network.from_layers(layers, name="mlp1e9")
    t1 = time.perf_counter()
    q = quotas(net, "erk", density)
    masks = random_masks(net, q, seed=0, sparse=True)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"params": net.params, "kept": masks.kept, "sample_s": t2 - t1,
                      "total_s": t2 - t0, "peak_bytes": rss}))
    """
)


def run_child(width: int, depth: int, density: float) -> dict:
    """Run :data:`CHILD` in a fresh interpreter on a ``depth x (width x width)`` MLP; its
    JSON record (params, kept, sample_s, total_s, peak_bytes)."""
    env = dict(os.environ, OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(width), str(depth), str(density)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"the MLP child failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def billion_mlp() -> bool:
    width, depth, density = 15_812, 4, 0.001
    r = run_child(width, depth, density)
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
    parser.add_argument("--pairs", type=int, default=11, help="interleaved A/B pairs (odd)")
    args = parser.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    a = resnet50_erk(args.pairs)
    b = billion_mlp()
    return 0 if a and b else 1


if __name__ == "__main__":
    sys.exit(main())
