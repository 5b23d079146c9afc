"""Benchmark: SVCCA / CCA / PWCCA of (10,000 x 512) activation pairs and minibatch CKA over
50,000 samples of a ResNet-20 layer, against plain numpy implementations of the same formulas.

Baselines (written here, measured in the same run):

- SVCCA / CCA: the google/svcca tutorial recipe in plain numpy: centre, ``np.linalg.svd`` of
  each side, keep ``s[:k] * V[:k]``, then CCA from ``np.cov``: ``Sxx^-1/2 Sxy Syy^-1/2`` with
  the inverse square roots by ``eigh`` (plus the reference's ``epsilon = 1e-10`` ridge) and an
  SVD. Our ``sg.svcca`` uses an eigendecomposition of ``X^T X`` (or an SVD) per side and the
  SVD of ``Qx^T Qy``.
- Minibatch CKA (Nguyen et al. 2021, linear kernel, minibatches of 256): per minibatch the Gram
  matrices and the unbiased HSIC of Song et al. written out (``tr(K~ L~) + ... - ...``).
  Ours is :class:`sparsegraph.metrics.cka_stream.MinibatchCKA` (the same numbers from
  ``X^T Y`` and row norms in feature space when the layer has fewer features than rows).

The ResNet-20 activations are the outputs of ``layer3.2.conv2`` (64 channels, 8 x 8) of two
differently seeded built-in ResNet-20s on random inputs, one sample per position
(``conv="positions"``): 782 images give 50,048 samples. The end-to-end streaming run
(``sg.layer_similarity(..., method="cka")``) is timed and its peak memory shown at 1/3 and all of
the samples, to show that memory does not grow with the number of samples.

Peak memory is measured with ``tracemalloc`` (numpy's and our allocations; torch's own tensor
memory is not traced) above what was allocated before the call. Times are medians of
``--repeats`` interleaved runs after a warm-up.

Run: ``python benchmarks/similarity.py [--repeats N] [--threads T]`` (``--threads`` caps the
BLAS threads of the whole process, default 1; 0 leaves the libraries' defaults).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc

if __name__ == "__main__":  # thread caps must be set before numpy loads its BLAS
    _ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _ap.add_argument("--repeats", type=int, default=3)
    _ap.add_argument("--threads", type=int, default=1)
    ARGS = _ap.parse_args()
    if ARGS.threads > 0:
        for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[_var] = str(ARGS.threads)

import numpy as np
import torch

import sparsegraph as sg
from sparsegraph.metrics.cka_stream import MinibatchCKA

# ----------------------------------------------------------------------------- baselines


def numpy_cca(a: np.ndarray, b: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Canonical correlations from covariances (features in columns), the reference's way."""
    na = a.shape[1]
    cov = np.cov(a.T, b.T)
    sxx, sxy, syy = cov[:na, :na], cov[:na, na:], cov[na:, na:]
    sxx = sxx / np.abs(sxx).max() + eps * np.eye(na)
    syy = syy / np.abs(syy).max() + eps * np.eye(syy.shape[0])
    sxy = sxy / np.sqrt(np.abs(cov[:na, :na]).max() * np.abs(cov[na:, na:]).max())

    def inv_sqrt(s: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(s)
        return (v / np.sqrt(w)) @ v.T

    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)


def numpy_svcca(a: np.ndarray, b: np.ndarray, keep: int | None) -> float:
    if keep is None:
        return float(numpy_cca(a, b).mean())
    reduced = []
    for m in (a, b):
        c = m - m.mean(0)
        _, s, vt = np.linalg.svd(c.T, full_matrices=False)  # (features, samples), as theirs
        reduced.append((s[:keep, None] * vt[:keep]).T)
    return float(numpy_cca(*reduced).mean())


def numpy_hsic1(k: np.ndarray, l: np.ndarray) -> float:
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    ksum, lsum = kt.sum(0), lt.sum(0)
    return float((np.sum(kt * lt) + ksum.sum() * lsum.sum() / ((n - 1) * (n - 2))
                  - 2.0 / (n - 2) * ksum @ lsum) / (n * (n - 3)))


def numpy_minibatch_cka(x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """Minibatch means weighted by the minibatch sizes (the last one is smaller)."""
    xy = xx = yy = 0.0
    for i in range(0, len(x), batch):
        a, b = x[i:i + batch].astype(np.float64), y[i:i + batch].astype(np.float64)
        k, l, m = a @ a.T, b @ b.T, len(a)
        xy += m * numpy_hsic1(k, l)
        xx += m * numpy_hsic1(k, k)
        yy += m * numpy_hsic1(l, l)
    return xy / np.sqrt(xx * yy)


def ours_minibatch_cka(x: np.ndarray, y: np.ndarray, batch: int) -> float:
    s = MinibatchCKA()
    for i in range(0, len(x), batch):
        s.update(x[i:i + batch], y[i:i + batch])
    return s.result().value


# ---------------------------------------------------------------------------- measuring


def measure(fn, repeats: int) -> tuple[float, float, object]:
    """(median seconds, peak traced MiB above the start, result)."""
    times, peaks, out = [], [], None
    for _ in range(repeats):
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        peaks.append((tracemalloc.get_traced_memory()[1] - base) / 2**20)
        tracemalloc.stop()
    return statistics.median(times), max(peaks), out


def compare(label: str, ours, base, repeats: int) -> None:
    ours(), base()  # warm-up
    rows = []
    for _ in range(repeats):  # interleaved
        rows.append((measure(ours, 1), measure(base, 1)))
    t_o = statistics.median(r[0][0] for r in rows)
    t_b = statistics.median(r[1][0] for r in rows)
    m_o, m_b = max(r[0][1] for r in rows), max(r[1][1] for r in rows)
    v_o, v_b = rows[-1][0][2], rows[-1][1][2]
    print(f"{label:<34}{t_o:>8.3f}s{t_b:>9.3f}s{t_b / t_o:>7.2f}x{m_o:>9.1f}{m_b:>9.1f}"
          f"{m_b / max(m_o, 1e-9):>7.2f}x  |diff| {abs(float(v_o) - float(v_b)):.1e}")


def resnet_activations(images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a, _ = sg.build_model("resnet20", seed=0)
    b, _ = sg.build_model("resnet20", seed=1)
    out = []
    for model in (a, b):
        rows = []
        handle = model.layer3[2].conv2.register_forward_hook(
            lambda m, i, o, rows=rows: rows.append(o.permute(0, 2, 3, 1).reshape(-1, o.shape[1])))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for i in range(0, images, 128):
                model(torch.randn(min(128, images - i), 3, 32, 32, generator=gen))
        handle.remove()
        out.append(torch.cat(rows).double().numpy())
    return out[0], out[1]


def main() -> None:
    torch.set_num_threads(max(ARGS.threads, 1) if ARGS.threads else torch.get_num_threads())
    r = ARGS.repeats
    print(f"threads {ARGS.threads or 'default'}, repeats {r} (medians; memory: peak traced MiB)")
    head = f"{'case':<34}{'ours':>9}{'numpy':>10}{'speed':>8}{'MiB us':>9}{'numpy':>9}{'mem':>8}"
    print(head)
    rng = np.random.default_rng(0)
    n, p, shared = 10_000, 512, 64
    z = rng.normal(size=(n, shared))
    x = np.hstack([z, rng.normal(size=(n, p - shared))]) @ rng.normal(size=(p, p))
    y = np.maximum(np.hstack([z, rng.normal(size=(n, p - shared))]) @ rng.normal(size=(p, p)), 0)
    compare("svcca keep=20, 10000x512 pair", lambda: sg.svcca(x, y, keep=20).value,
            lambda: numpy_svcca(x, y, 20), r)
    compare("cca (keep=None), 10000x512 pair", lambda: sg.svcca(x, y, keep=None).value,
            lambda: numpy_svcca(x, y, None), r)
    t, m, _ = measure(lambda: sg.pwcca(x, y).value, r)
    print(f"{'pwcca, 10000x512 pair (ours only)':<34}{t:>8.3f}s{'':>26}{m:>9.1f}")

    t0 = time.perf_counter()
    xa, xb = resnet_activations(782)
    print(f"ResNet-20 layer3.2.conv2 activations: {xa.shape[0]:,} samples x {xa.shape[1]} "
          f"(two forward passes over 782 images: {time.perf_counter() - t0:.1f}s)")
    compare("minibatch CKA, 50048 x 64, b=256", lambda: ours_minibatch_cka(xa, xb, 256),
            lambda: numpy_minibatch_cka(xa, xb, 256), r)
    full = sg.cka(xa, xb, debiased=True).value
    print(f"  full-data debiased CKA (feature space) {full:.4f}; the n x n Gram matrices of the "
          f"full data would need {3 * xa.shape[0] ** 2 * 8 / 2**30:.0f} GiB")

    a, _ = sg.build_model("resnet20", seed=0)
    b, _ = sg.build_model("resnet20", seed=1)
    for images in (256, 782):
        gen = torch.Generator().manual_seed(0)
        inputs = torch.randn(images, 3, 32, 32, generator=gen)
        t, m, tab = measure(lambda inputs=inputs: sg.layer_similarity(
            a, b, inputs, method="cka", layers=["layer3.2.conv2"], conv="positions",
            batch_size=256, progress=False), 1)
        row = tab["layer3.2.conv2"]
        print(f"layer_similarity cka streaming, {row.samples:>6,} samples: {t:6.2f}s, peak "
              f"{m:6.1f} MiB traced, value {row.value:.4f}")


if __name__ == "__main__":
    main()
