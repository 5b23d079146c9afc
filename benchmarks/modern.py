"""Benchmark of tracing and exact effective sparsity on Vision Transformers.

For ``vit_tiny`` (the built-in CIFAR ViT-Tiny, 32x32, patch 4) and a ViT-B/16-sized model built
here (224x224, patch 16, width 768, depth 12, 12 heads, 1000 classes: 86.6M parameters), at
densities 0.05 and 0.005 (random masks drawn with numpy over DESIGN §2's default prunable
weights, ``reference.default_prunable``), measured in the same run:

- ``trace``: median time of ``sg.trace(model, x)`` (after a first call);
- ``effective``: median warm time of ``sg.effective_masks`` (the first call of the process is
  reported separately);
- ``oracle``: median time of the float64 oracle of DESIGN §3 (``reference.oracle_effective``:
  three forward passes and one backward pass of the real module, with ``--threads`` torch
  threads), the way the result is checked;
- ``count_nonzero``: median time of ``np.count_nonzero`` over the same masks (the floor: one
  read of every mask).

Printed ratios: ``oracle / effective`` (how much faster than checking by autograd) and
``effective / count_nonzero`` (how far above reading the masks once). Until ``sg.trace`` reads
attention, the sparsegraph columns say ``not traceable yet: <error>`` and the oracle and floor
columns are still measured.

Run: ``python benchmarks/modern.py [--repeats N] [--oracle-repeats N] [--threads N]
[--models vit_tiny,vit_b16]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from effective import _median  # noqa: E402
from reference import default_prunable, oracle_effective  # noqa: E402

import sparsegraph as sg  # noqa: E402
from sparsegraph.pytorch.models_modern import VisionTransformer  # noqa: E402


def _vit_b16() -> tuple[torch.nn.Module, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VisionTransformer(img_size=224, patch_size=16, num_classes=1000, dim=768,
                                  depth=12, heads=12).eval()
    return model, torch.zeros(1, 3, 224, 224)


MODELS = {"vit_tiny": lambda: sg.build_model("vit_tiny"), "vit_b16": _vit_b16}


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of trace/effective")
    parser.add_argument("--oracle-repeats", type=int, default=1, help="runs of the oracle")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the oracle (default 1)")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)

    rows = []
    first = None
    for name in args.models.split(","):
        model, x = MODELS[name]()
        params = dict(model.named_parameters())
        names = default_prunable(model)
        n_params = sum(params[n].numel() for n in names)
        net, error, t_trace = None, None, float("nan")
        try:
            net = sg.trace(model, x)
            t_trace = _median(lambda m=model, x=x: sg.trace(m, x), max(1, args.repeats // 3))
        except Exception as exc:  # noqa: BLE001 - report any tracer failure and go on
            error = _first_line(exc)
        for density in (0.05, 0.005):
            rng = np.random.default_rng(0)
            masks = {n: rng.random(tuple(params[n].shape)) < density for n in names}
            t_cnt = _median(lambda m=masks: sum(np.count_nonzero(v) for v in m.values()),
                            args.repeats)
            t_eff = float("nan")
            if net is not None:
                try:
                    t0 = time.perf_counter()
                    sg.effective_masks(net, masks)
                    if first is None:
                        first = time.perf_counter() - t0
                    t_eff = _median(lambda n=net, m=masks: sg.effective_masks(n, m),
                                    args.repeats)
                except Exception as exc:  # noqa: BLE001
                    error = _first_line(exc)
            t_ora = _median(lambda m=model, x=x, k=masks: oracle_effective(
                m, x, k, threads=args.threads), args.oracle_repeats)
            rows.append((name, n_params, density, t_trace, t_eff, t_ora, t_cnt, error))

    if first is not None:
        print(f"first call of effective_masks in this process: {first * 1e3:.1f} ms")
    print(f"oracle: float64, {args.threads} torch thread(s), median of {args.oracle_repeats}; "
          f"trace/effective/count_nonzero: median of {args.repeats}")
    head = (f"{'model':<9} {'prunable':>10} {'density':>7} {'trace':>9} {'effective':>10} "
            f"{'oracle':>9} {'count_nz':>9} {'ora/eff':>8} {'eff/cnt':>8}")
    print(head)
    print("-" * len(head))
    for name, n_params, density, t_trace, t_eff, t_ora, t_cnt, error in rows:
        line = (f"{name:<9} {n_params:>10,} {density:>7g} ")
        if error is None:
            line += (f"{t_trace:>8.2f}s {t_eff * 1e3:>8.2f}ms {t_ora:>8.2f}s "
                     f"{t_cnt * 1e3:>7.2f}ms {t_ora / t_eff:>7.0f}x {t_eff / t_cnt:>7.2f}x")
        else:
            line += (f"{'-':>9} {'-':>10} {t_ora:>8.2f}s {t_cnt * 1e3:>7.2f}ms "
                     f"{'-':>8} {'-':>8}")
        print(line)
    errors = {(name, error) for name, *_, error in rows if error is not None}
    for name, error in sorted(errors):
        print(f"{name}: not traceable yet: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
