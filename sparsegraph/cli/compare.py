"""``sparsegraph compare MODEL``: effective vs direct compression over schemes, densities, seeds."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .common import add_model_args, console, parse_shape, print_json, split_list
from .options import add_data_args, add_scheme_arg, data_from_args, scheme_epilog, wrap

#: Files written into the output directory.
OUTPUT_FILES = ("results.csv", "results.json", "compression.png", "report.html")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="sweep schemes x densities x seeds: effective vs direct compression, plots, report",
        description=wrap("For every scheme, density and seed: make the mask (random masks from a "
        "quota scheme, or a pruner's on the model re-initialised from the seed), audit it "
        "(exact effective sparsity) and collect direct/effective density, layer collapse and "
        "dead units. Writes results.csv, results.json, compression.png and a self-contained "
        "report.html into the output directory. Small sweeps run in this process; larger ones "
        "on a local Dask cluster when dask.distributed is installed (the output says which, "
        "and why)."),
        epilog=scheme_epilog(("quota", "pruner"), sweepable_only=True),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    add_scheme_arg(p, ("quota", "pruner"), default="uniform,erk,igq", several=True,
                   old="--schemes")
    p.add_argument(
        "--densities",
        default="0.1:0.0001:20",
        metavar="GRID",
        help="START:STOP:N for N log-spaced densities (both ends included), or a comma-separated "
        "list; default: 0.1:0.0001:20",
    )
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="seeds per scheme and density (0 .. N-1); default 1")
    p.add_argument("--exclude", metavar="NAMES", default=None,
                   help="comma-separated layer names or globs kept dense by every scheme "
                   "(they count in the budget)")
    p.add_argument("--rounds", type=int, default=100, metavar="N",
                   help="rounds of the iterative schemes (synflow); default 100")
    add_data_args(p)
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="output directory (created; its four result files are overwritten); "
                   "default: compare-<model>")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on an existing Dask cluster, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of a local Dask cluster; 0 runs serially in this "
                   "process; default: decided by the measured work")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries of a failed task before it is reported; default 2")
    p.add_argument("--spectral", action="store_true",
                   help="add the Ramanujan spectral metrics of every layer (slower)")
    p.add_argument("--json", action="store_true",
                   help="print results.json to stdout instead of the summary table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, kernels=True)


def _default_dir(model: str) -> str:
    stem = model.rsplit(":", 1)[-1] if ":" in model else Path(model).stem or model
    return "compare-" + (re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem).strip("_") or "model")


def _command(args: argparse.Namespace, out: str) -> list[str]:
    """The canonical command line of this run (what the record stores)."""
    cmd = ["sparsegraph", "compare", args.model, "--scheme", args.scheme,
           "--densities", args.densities, "--seeds", str(args.seeds)]
    if args.input_shape is not None:
        cmd += ["--input-shape", args.input_shape]
    if args.identity_modules is not None:
        cmd += ["--identity-modules", args.identity_modules]
    if args.exclude is not None:
        cmd += ["--exclude", args.exclude]
    if args.data is not None:
        cmd += ["--data", args.data, "--batches", str(args.batches), "--batch-size",
                str(args.batch_size), "--data-seed", str(args.data_seed)]
    if args.rounds != 100:
        cmd += ["--rounds", str(args.rounds)]
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
    from .._args import check_count
    from ..errors import ArgumentError
    from ..sweep.compare import compare
    from .options import coverage, print_coverage

    seeds = check_count(args.seeds, "--seeds")
    if args.workers is not None:
        check_count(args.workers, "--workers", minimum=0)
    check_count(args.retries, "--retries", minimum=0)
    out = args.output or _default_dir(args.model)
    shape = parse_shape(args.input_shape)
    target: object = args.model
    data = None
    if args.data is not None:
        from ..pytorch.models import resolve_model

        model, example = resolve_model(args.model, shape)
        data = data_from_args(args, model, example)
    if args.identity_modules is not None:
        from ..graph.trace import trace
        from ..pytorch.models import resolve_model
        from ..registry import SCHEMES
        from .common import identity_modules

        pruners = [s for s in split_list(args.scheme) or []
                   if s in SCHEMES and SCHEMES[s].kind == "pruner"]
        if pruners:
            raise ArgumentError(
                f"--identity-modules: the pruners ({', '.join(pruners)}) trace the model "
                "themselves, without identity modules; compare them without the option"
            )
        model, example = resolve_model(args.model, shape)
        target, shape = trace(model, example, name=args.model, **identity_modules(args)), None
    result = compare(
        target,
        schemes=args.scheme,
        densities=args.densities,
        seeds=seeds,
        spectral=args.spectral,
        scheduler=args.scheduler,
        workers=args.workers,
        retries=args.retries,
        progress=not args.no_progress and not args.json,
        input_shape=shape,
        exclude=split_list(args.exclude),
        data=data,
        rounds=check_count(args.rounds, "--rounds"),
        command=_command(args, out),
    )
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArgumentError(f"-o {out}: cannot create the output directory ({exc})") from None
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
        net = result.net
        print_coverage(coverage(net, result.provenance["model"]["dense"], "--exclude"))
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
    from rich.table import Table

    from ..sweep.report import summary_columns

    prov = result.provenance  # type: ignore[attr-defined]
    table = Table(title=f"{prov['model']['name']}: effective vs direct compression"
                  + (" (mean over seeds)" if len(prov["arguments"]["seeds"]) > 1 else ""))
    columns = summary_columns(result)
    for label, _, _ in columns:
        table.add_column(label, justify="left" if label == "scheme" else "right")
    for r in result.summary():  # type: ignore[attr-defined]
        table.add_row(*[fmt(r) for _, _, fmt in columns])
    out = console()
    out.print(table)
    ex = prov["execution"]
    how = "in this process" if ex["mode"] == "serial" else f"on Dask, {ex['workers']} workers"
    out.print(f"ran {how}: {ex['reason']}", soft_wrap=True, highlight=False)
    written = [f for f in OUTPUT_FILES if (folder / f).exists()]
    out.print(f"wrote {', '.join(written)} in {folder}/", soft_wrap=True)
