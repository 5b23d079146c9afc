"""Why sparsegraph traces eagerly: coverage and time against ``torch.export``, measured here.

For every built-in model and every model of the test zoo (``tests/zoo.py``, HuggingFace ones
when ``transformers`` is installed) this times ``sg.trace`` (the eager op-level recorder) and
``torch.export.export(strict=False)`` (the ATen graph the tracer could have been built on,
before any mapping onto node kinds), and says which of them read the model at all. Each is
timed warm (median of ``--repeats`` calls after one warm-up call) and cold (the first call in
a fresh process: ``torch.export`` imports ``torch._dynamo`` then).

    python benchmarks/trace.py [--repeats 3] [--models resnet18,vit_tiny,...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from effective import _median  # noqa: E402

import sparsegraph as sg  # noqa: E402


def _cases():
    from zoo import HF_ZOO, ZOO, hf_available

    for name in sg.MODELS:
        yield name, lambda name=name: (*sg.build_model(name), {})
    zoo = dict(ZOO)
    if hf_available():
        zoo.update(HF_ZOO)
    for name, case in zoo.items():
        def make(case=case):
            model, args, kwargs = case.make()
            return model, args[0] if len(args) == 1 else args, kwargs
        yield name, make


def _time(fn, repeats: int) -> float:
    """Median of ``repeats`` timed calls after one warm-up call (compilation, caches)."""
    fn()
    return _median(fn, repeats)


def _cold(which: str) -> float:
    code = (
        "import time, torch, sparsegraph as sg\n"
        "m, x = sg.build_model('resnet18')\n"
        "t = time.perf_counter()\n"
        + ("sg.trace(m, x)\n" if which == "sparsegraph" else
           "torch.export.export(m.eval(), (x,), strict=False)\n")
        + "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=None, help="comma-separated subset")
    args = ap.parse_args()
    chosen = args.models.split(",") if args.models else None
    torch.set_num_threads(1)
    print(f"{'model':22} {'sg.trace':>12} {'torch.export':>14}")
    ok_sg = ok_ex = total = 0
    for name, make in _cases():
        if chosen and name not in chosen:
            continue
        total += 1
        model, x, kwargs = make()
        model.eval()
        xs = x if isinstance(x, tuple) else (x,)
        try:
            t_sg = _time(lambda m=model, x=x, k=kwargs: sg.trace(m, x, example_kwargs=k or None),
                         args.repeats)
            a = f"{t_sg * 1e3:9.0f} ms"
            ok_sg += 1
        except sg.SparseGraphError as exc:
            a = f"fails ({type(exc).__name__})"
        try:
            t_ex = _time(lambda m=model, xs=xs, k=kwargs: torch.export.export(
                m, xs, k or None, strict=False), 1)
            b = f"{t_ex * 1e3:11.0f} ms"
            ok_ex += 1
        except Exception as exc:  # noqa: BLE001 - any export failure is a data point
            b = f"fails ({type(exc).__name__})"
        print(f"{name:22} {a:>12} {b:>14}", flush=True)
    print(f"read: sg.trace {ok_sg}/{total}, torch.export {ok_ex}/{total} (export only builds "
          "the ATen graph; mapping it onto node kinds would come on top)")
    print(f"first call in a fresh process, resnet18: sg.trace {_cold('sparsegraph'):.2f} s, "
          f"torch.export {_cold('export'):.2f} s")


if __name__ == "__main__":
    main()
