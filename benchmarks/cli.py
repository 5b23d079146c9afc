"""Command-line latency: each command run as a process, median of several runs, beside its target.

    python benchmarks/cli.py [--runs 5]

Targets (issue 13, item 5): ``sparsegraph --help`` and ``sparsegraph models`` under 0.5 s;
``sparsegraph audit resnet18 m.safetensors`` with warm caches (numba's kernel cache and the trace
cache of built-in networks, both filled by one untimed run first) under 3 s end to end. The
baseline printed beside them is ``python -c pass`` in the same run, the floor of any command.

A profile of the audit in one process follows (``--profile``): where the time goes before and
after the caches are warm — importing torch, tracing, loading the numba kernels, the kernels
themselves — so a missed target says what to work on. The tracer's time is reported apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"help": 0.5, "models": 0.5, "audit resnet18 (warm)": 3.0}


def _time(argv: list[str], env: dict[str, str], cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return elapsed


def _profile(mask: Path, env: dict[str, str]) -> str:
    """Phases of ``audit resnet18`` in a fresh process: cold trace path, then the cached one."""
    code = r"""
import sys, time
t, last = {}, [time.perf_counter()]
def lap(name):
    now = time.perf_counter()
    t[name], last[0] = now - last[0], now
import numpy, numba
lap("import numpy + numba")
import torch
lap("import torch")
from sparsegraph.pytorch.models import build_model
from sparsegraph.graph.trace import trace
from sparsegraph.cli import netcache
from sparsegraph.masks.files import load_masks
from sparsegraph.metrics.audit import audit
lap("import sparsegraph modules")
model, x = build_model("resnet18")
lap("build resnet18")
net = trace(model, x, name="resnet18")
lap("trace (first call)")
trace(model, x, name="resnet18")
lap("trace (second call)")
netcache.load("resnet18", (1, 3, 224, 224))
lap("trace cache read")
m = load_masks(sys.argv[1], net=net)
lap("load mask file")
audit(net, m)
lap("audit (first call: kernels load)")
audit(net, m)
lap("audit (kernels loaded)")
for k, v in t.items():
    print(f"  {k:<36} {v:6.2f} s")
"""
    proc = subprocess.run([sys.executable, "-c", code, str(mask)], env=env, capture_output=True,
                          text=True)
    return proc.stdout if proc.returncode == 0 else proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="add the phase profile of audit")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "sparsegraph"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SPARSEGRAPH_CACHE_DIR": str(Path(tmp) / "cache")}
        mask = Path(tmp) / "m.safetensors"
        subprocess.run([*exe, "generate", "resnet18", "--scheme", "erk", "--density", "0.05",
                        "-o", str(mask)], env=env, check=True, capture_output=True)
        commands = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "help": [*exe, "--help"],
            "models": [*exe, "models"],
            "audit resnet18 (warm)": [*exe, "audit", "resnet18", str(mask)],
        }
        _time(commands["audit resnet18 (warm)"], env, tmp)  # fill both caches, untimed
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.runs):  # interleaved, so load changes hit every command alike
            for name, argv in commands.items():
                times[name].append(_time(argv, env, tmp))
        floor = statistics.median(times["python -c pass (floor)"])
        print(f"command latency, median of {args.runs} runs (min-max):")
        for name, ts in times.items():
            med = statistics.median(ts)
            target = TARGETS.get(name)
            verdict = "" if target is None else (
                f"target < {target:g} s: {'met' if med < target else 'MISSED'}")
            print(f"  {name:<26} {med:6.2f} s ({min(ts):.2f}-{max(ts):.2f})  "
                  f"{med / floor:5.1f}x floor  {verdict}")
        if args.profile:
            print("audit resnet18, phases in one process:")
            print(_profile(mask, env), end="")


if __name__ == "__main__":
    main()
