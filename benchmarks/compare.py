"""Benchmark: a 3-scheme x 20-density x 3-seed comparison on CIFAR VGG-16 and ResNet-18.

For each model this prints the wall time of :func:`sparsegraph.compare` run serially (the
baseline) and on a local Dask cluster of worker processes (the default execution), their ratio,
and where the time of the tasks goes: mask generation (quota + ``random_masks``) against the
audit (exact effective sparsity), as sums over the tasks (``CompareResult.tasks``: every task
times its two phases). The numba kernels are warmed once before timing; the warm-up (kernel
compile or cache load) is reported on its own line, as is the trace of the model.

Run: ``python benchmarks/compare.py`` (about a few minutes on 2 cores);
``--quick`` for a 3 x 4 x 1 smoke run; ``--models``, ``--schemes``, ``--densities``, ``--seeds``,
``--workers`` (``0``: serial only) to change the sweep.
"""

from __future__ import annotations

import argparse
import os
import time

from sparsegraph.graph.trace import trace
from sparsegraph.pytorch.models import build_model
from sparsegraph.sweep.compare import compare, parse_density_grid


def _phase_shares(result) -> tuple[float, float, float]:
    ok = [t for t in result.tasks if t["status"] == "ok"]
    mask = sum(t["mask_s"] for t in ok)
    audit = sum(t["audit_s"] for t in ok)
    return mask, audit, mask + audit


def _line(label: str, result, wall: float) -> str:
    mask, audit, busy = _phase_shares(result)
    n = len(result.tasks)
    failed = len(result.failures)
    share_m = mask / busy if busy else float("nan")
    return (
        f"  {label:<22} wall {wall:8.2f} s  ({n / wall:6.1f} tasks/s)   task time {busy:8.2f} s"
        f" = mask {mask:7.2f} s ({share_m:5.1%}) + audit {audit:7.2f} s ({1 - share_m:5.1%})"
        + (f"   FAILED {failed}" if failed else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet18_cifar")
    parser.add_argument("--schemes", default="uniform,erk,igq")
    parser.add_argument("--densities", default="0.1:0.0001:20")
    parser.add_argument("--seeds", type=int, default=3)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--workers", type=int, default=cores,
                        help="Dask worker processes (0: serial only)")
    parser.add_argument("--quick", action="store_true", help="3 schemes x 4 densities x 1 seed")
    parser.add_argument("--plot", metavar="DIR", default=None,
                        help="also write DIR/compare_<model>.png (the serial run's figure)")
    args = parser.parse_args()
    if args.quick:
        args.densities, args.seeds = "0.1:0.001:4", 1

    for name in args.models.split(","):
        model, x = build_model(name)
        t0 = time.perf_counter()
        net = trace(model, x, name=name)
        t_trace = time.perf_counter() - t0
        sweep = dict(schemes=args.schemes, densities=args.densities, seeds=args.seeds)
        n_tasks = (len(args.schemes.split(",")) * len(parse_density_grid(args.densities))
                   * args.seeds)
        print(f"\n{name}: {net.params:,} prunable weights in {len(net.layers)} layers, "
              f"{n_tasks} tasks ({args.schemes} x {args.densities} x {args.seeds} seeds); "
              f"trace {t_trace:.2f} s")
        # one task first: its warm-up is the kernels' first call in this process (numba
        # compile or cache load); the timed runs below are warm
        first = compare(net, schemes=args.schemes.split(",")[0], densities=0.01, client=False,
                        progress=False)
        cold = first.provenance["execution"]["warmup_s"]
        print(f"  first call in this process: warm-up {cold:.2f} s (kernel compile or cache "
              f"load), then one task {first.tasks[0]['total_s']:.2f} s")
        t0 = time.perf_counter()
        serial = compare(net, client=False, progress=False, **sweep)
        wall_serial = time.perf_counter() - t0
        print(_line("serial (baseline)", serial, wall_serial))
        if args.plot:
            from pathlib import Path

            from sparsegraph.sweep.plots import plot_compression

            Path(args.plot).mkdir(parents=True, exist_ok=True)
            plot_compression(serial, Path(args.plot) / f"compare_{name}.png")
        if args.workers:
            t0 = time.perf_counter()
            dist = compare(net, workers=args.workers, progress=False, **sweep)
            wall_dist = time.perf_counter() - t0
            ex = dist.provenance["execution"]
            print(_line(f"dask, {ex['workers']} processes", dist, wall_dist))
            print(f"  dask / serial wall time: {wall_dist / wall_serial:.2f}x "
                  f"(speed-up {wall_serial / wall_dist:.2f}x; includes cluster start-up and "
                  f"worker warm-up {ex['warmup_s']:.2f} s); identical table: "
                  f"{dist.equals(serial)}")
        low = [r for r in serial.network_rows() if r["collapsed"]]
        first = {}
        for r in low:
            first[r["scheme"]] = max(first.get(r["scheme"], 0.0), r["density"])
        print("  first collapse (largest density with a collapsed seed): "
              + (", ".join(f"{s} {d:.3g}" for s, d in first.items()) or "none"))


if __name__ == "__main__":
    main()
