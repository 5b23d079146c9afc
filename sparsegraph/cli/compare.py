"""``sparsegraph compare MODEL``: effective vs direct compression over schemes, densities, seeds."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .common import add_model_args, console, parse_shape, print_json, split_list

#: Files written into the output directory.
OUTPUT_FILES = ("results.csv", "results.json", "compression.png", "report.html")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="sweep schemes x densities x seeds: effective vs direct compression, plots, report",
        description="For every scheme, density and seed: generate the mask, audit it (exact "
        "effective sparsity) and collect direct/effective density, layer collapse and dead "
        "units. Writes results.csv, results.json, compression.png and a self-contained "
        "report.html into the output directory. Runs on a local Dask cluster when "
        "dask.distributed is installed (serially otherwise).",
    )
    add_model_args(p)
    p.add_argument(
        "--schemes",
        default="uniform,erk,igq",
        metavar="NAMES",
        help="comma-separated quota schemes (uniform, uniform+, er, erk, er_graph, igq: random "
        "masks with that layerwise quota) and/or data-free pruners (synflow, magnitude, "
        "random, lamp; scored at a fresh initialisation from each seed); "
        "default: uniform,erk,igq",
    )
    p.add_argument(
        "--densities",
        default="0.1:0.0001:20",
        metavar="GRID",
        help="START:STOP:N for N log-spaced densities (both ends included), or a comma-separated "
        "list; default: 0.1:0.0001:20",
    )
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="seeds per scheme and density (0 .. N-1); default 1")
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="output directory (created; its four result files are overwritten); "
                   "default: compare-<model>")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on an existing Dask cluster, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local Dask cluster (default: one per core); "
                   "0 runs serially in this process")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries of a failed task before it is reported; default 2")
    p.add_argument("--spectral", action="store_true",
                   help="add the Ramanujan spectral metrics of every layer (slower)")
    p.add_argument("--json", action="store_true",
                   help="print results.json to stdout instead of the summary table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _default_dir(model: str) -> str:
    stem = model.rsplit(":", 1)[-1] if ":" in model else Path(model).stem or model
    return "compare-" + (re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem).strip("_") or "model")


def _command(args: argparse.Namespace, out: str) -> list[str]:
    """The canonical command line of this run (what the record stores)."""
    cmd = ["sparsegraph", "compare", args.model, "--schemes", args.schemes,
           "--densities", args.densities, "--seeds", str(args.seeds)]
    if args.input_shape is not None:
        cmd += ["--input-shape", args.input_shape]
    if getattr(args, "exclude", None) is not None:
        cmd += ["--exclude", args.exclude]
    if args.spectral:
        cmd.append("--spectral")
    cmd += ["-o", out]
    if args.scheduler is not None:
        cmd += ["--scheduler", args.scheduler]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    if args.retries != 2:
        cmd += ["--retries", str(args.retries)]
    return cmd


def run(args: argparse.Namespace) -> int:
    from ..errors import SparseGraphError
    from ..sweep.compare import compare

    if args.seeds < 1:
        raise SparseGraphError(f"--seeds: expected a positive number of seeds, got {args.seeds}")
    if args.workers is not None and args.workers < 0:
        raise SparseGraphError(f"--workers: expected 0 or more, got {args.workers}")
    out = args.output or _default_dir(args.model)
    result = compare(
        args.model,
        schemes=args.schemes,
        densities=args.densities,
        seeds=args.seeds,
        spectral=args.spectral,
        scheduler=args.scheduler,
        workers=args.workers,
        retries=args.retries,
        progress=not args.no_progress,
        input_shape=parse_shape(args.input_shape),
        exclude=split_list(getattr(args, "exclude", None)),
        command=_command(args, out),
    )
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SparseGraphError(f"-o {out}: cannot create the output directory ({exc})") from None
    result.to_csv(folder / "results.csv")
    result.to_json(folder / "results.json")
    notes: list[str] = []
    try:
        from ..sweep.plots import plot_compression

        if result.network_rows():
            plot_compression(result, folder / "compression.png")
        else:
            notes.append("no task succeeded: compression.png not drawn")
    except ImportError as exc:
        notes.append(f"{exc}; compression.png not drawn")
    from ..sweep.report import write_report

    write_report(result, folder / "report.html")

    failed = result.failures
    if args.json:
        print_json(result.to_dict())
    else:
        _print_summary(result, folder)
    for note in notes:
        print(f"sparsegraph compare: warning: {note}", file=sys.stderr)
    if failed:
        print(f"sparsegraph compare: {len(failed)} of {len(result.tasks)} tasks failed after "
              f"{args.retries} retries:", file=sys.stderr)
        for t in failed[:10]:
            print(f"  {t['scheme']} density {t['density']:.4g} seed {t['seed']}: {t['error']}",
                  file=sys.stderr)
        return 1
    return 0


def _print_summary(result: object, folder: Path) -> None:
    import math

    from rich.table import Table

    def fmt(x: float) -> str:
        return "∞" if math.isinf(x) else ("–" if math.isnan(x) else f"{x:,.4g}")

    table = Table(title=f"{result.provenance['model']['name']}: effective vs direct compression "  # type: ignore[attr-defined]
                  "(mean over seeds)")
    for col in ("scheme", "density", "direct ×", "effective ×", "min", "max", "collapsed"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for r in result.summary():  # type: ignore[attr-defined]
        table.add_row(r["scheme"], f"{r['density']:.4g}", fmt(r["direct_compression"]),
                      fmt(r["effective_compression"]), fmt(r["effective_compression_min"]),
                      fmt(r["effective_compression_max"]), f"{r['collapsed']}/{r['seeds']}")
    out = console()
    out.print(table)
    written = [f for f in OUTPUT_FILES if (folder / f).exists()]
    out.print(f"wrote {', '.join(written)} in {folder}/", soft_wrap=True)
