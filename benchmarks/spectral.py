"""Benchmark: spectral metrics (incl. IMDB) of every layer vs the straightforward method.

The straightforward method is what the paper's scripts do, minus their networkx loops: for each
layer and for each IMDB subgraph, build the full sparse symmetric adjacency
``[[0, B], [B^T, 0]]`` and call ``scipy.sparse.linalg.eigsh(k=3)`` (largest magnitude; the
spectrum is symmetric, so the three values are ``lambda1, -lambda1, +-mu_hat``).

Run: ``python benchmarks/spectral.py [--repeats N] [--threads T]``. Prints per model/density
the two times (medians over ``N`` interleaved runs: ours, baseline, ours, baseline, ...; the
numba kernels are compiled/loaded by a warm-up before any timing), the speed-up, the largest
relative difference of lambda1, mu_hat and IMDB, and PASS/MISS for the >= 10x target.
``--threads`` (default 1) caps the BLAS/OpenMP threads of the whole process, so both methods
run under the same limit (the machine this was written on has 2 shared cores; ``0`` leaves the
libraries' defaults).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

if __name__ == "__main__":  # thread caps must be set before numpy loads its BLAS
    _ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _ap.add_argument("--repeats", type=int, default=5)
    _ap.add_argument("--threads", type=int, default=1)
    ARGS = _ap.parse_args()
    if ARGS.threads > 0:
        for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[_var] = str(ARGS.threads)

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from sparsegraph.graph.trace import trace
from sparsegraph.metrics.spectral import layer_spectrum, spectral
from sparsegraph.pytorch.models import build_model

TARGET = 10.0


def uniform_masks(net, density: float, seed: int) -> dict[str, np.ndarray]:
    """Exactly round(density * params) kept per layer, uniformly at random (numpy)."""
    ss = np.random.SeedSequence(seed)
    out = {}
    for layer, child in zip(net.layers, ss.spawn(len(net.layers)), strict=True):
        rng = np.random.default_rng(child)
        m = np.zeros(layer.params, bool)
        m[rng.choice(layer.params, round(density * layer.params), replace=False)] = True
        out[layer.name] = m.reshape(layer.shape)
    return out


def eigsh_top2(b: np.ndarray) -> tuple[float, float]:
    """lambda1, mu_hat of a bool biadjacency (rows = left) via eigsh(k=3) on the adjacency."""
    b = b[b.any(axis=1)][:, b.any(axis=0)]
    x = sp.csr_array(b.astype(np.float64))
    adj = sp.bmat([[None, x], [x.T, None]], format="csr")
    vals = spla.eigsh(adj, k=3, return_eigenvectors=False)
    a = np.sort(np.abs(vals))[::-1]
    return float(a[0]), float(a[2])


def baseline_layer(m2: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(lambda1, mu_hat, imdb) of a (out, fan_in) mask, the straightforward way."""
    b = m2.T
    e = int(b.sum())
    nl, nr = int(b.any(axis=1).sum()), int(b.any(axis=0).sum())
    if e == 0 or e / nl < 3 or e / nr < 3:
        return None, None, None
    lam1, mu = eigsh_top2(b)
    deg = b.sum(axis=1)
    norms = []
    for d in np.unique(deg):
        rows = np.flatnonzero(deg == d)
        if d == 0 or rows.size < 3:
            continue
        sub = b[rows]
        n_r = int(sub.any(axis=0).sum())
        if d < 3 or rows.size * d / n_r < 3:
            continue
        _, mu_g = eigsh_top2(sub)
        bound = math.sqrt(d - 1) + math.sqrt(rows.size * d / n_r - 1)
        norms.append((bound - mu_g) / bound)
    return lam1, mu, (float(np.mean(norms)) if norms else None)


def rel(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    return abs(a - b) / max(abs(b), 1e-12)


def main(repeats: int = 5) -> int:
    # warm-up (imports, LAPACK, numba kernels): small layers through both methods
    from sparsegraph.graph.network import Layer

    warm = Layer("w.weight", "w", "linear", (64, 256), 256, 64)
    wm = np.random.default_rng(0).random((64, 256)) < 0.1
    layer_spectrum(warm, wm)
    baseline_layer(wm)

    ok = True
    rows = []
    for model_name in ("vgg16", "resnet18"):
        model, example = build_model(model_name)
        net = trace(model, example)
        for density in (0.05, 0.01):
            masks = uniform_masks(net, density, seed=0)
            t_ours, t_base = [], []
            for _ in range(max(repeats, 1)):  # interleaved, so both see the same load
                t0 = time.perf_counter()
                rep = spectral(net, masks)
                t_ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                base = {
                    layer.name: baseline_layer(masks[layer.name].reshape(layer.out_channels, -1))
                    for layer in net.layers
                }
                t_base.append(time.perf_counter() - t0)
            t_ours, t_base = float(np.median(t_ours)), float(np.median(t_base))
            worst = 0.0
            for rec in rep.layers:
                lam1, mu, imdb = base[rec.name]
                worst = max(worst, rel(rec.lambda1, lam1), rel(rec.mu_hat, mu),
                            rel(rec.imdb, imdb))
            speed = t_base / t_ours
            good = speed >= TARGET and worst < 1e-6
            ok &= good
            n_sub = sum(r.imdb_scored or 0 for r in rep.layers)
            rows.append((model_name, density, len(net.layers), rep.scored_layers, n_sub,
                         t_ours, t_base, speed, worst, good))
    print(f"BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; "
          f"median of {max(repeats, 1)} interleaved runs; {os.cpu_count()} CPUs")
    print(f"{'model':9} {'density':>7} {'layers':>6} {'scored':>6} {'imdb-sub':>8} "
          f"{'ours s':>8} {'eigsh s':>8} {'speedup':>8} {'max rel diff':>12}  result")
    for m, d, nl, ns, nsub, t1, t2, sp_, w, g in rows:
        print(f"{m:9} {d:7.2f} {nl:6d} {ns:6d} {nsub:8d} {t1:8.3f} {t2:8.3f} {sp_:7.1f}x "
              f"{w:12.2e}  {'PASS' if g else 'MISS'}")
    print(f"target: >= {TARGET:g}x faster with the same values (max rel diff < 1e-6): "
          f"{'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(ARGS.repeats))
