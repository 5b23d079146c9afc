"""``sparsegraph quotas MODEL --density D``: per-layer densities of the quota schemes."""

from __future__ import annotations

import argparse
from typing import Any

from ..registry import names
from .common import add_model_args, check_plot, console, load_net, print_json, split_list
from .options import coverage, print_coverage, resolve_scheme, scheme_epilog, wrap


def add_quota_args(parser: argparse.ArgumentParser) -> None:
    """``--dense``, ``--dense-outside-budget`` and ``--erk-power-scale`` (shared with generate)."""
    parser.add_argument("--dense", metavar="NAMES", default=None,
                        help="comma-separated layer names or globs kept dense (density 1)")
    parser.add_argument("--dense-outside-budget", action="store_true",
                        help="dense layers come on top of the density instead of counting in "
                        "it (default: they count, RigL's convention)")
    parser.add_argument("--erk-power-scale", type=float, default=1.0, metavar="P",
                        help="exponent of ERK's raw density (erk only; default 1)")


def quota_options(args: argparse.Namespace, scheme: str) -> dict[str, Any]:
    """Keyword options of :func:`sparsegraph.quotas` from the parsed arguments."""
    from ..registry import get

    opts: dict[str, Any] = {"dense": split_list(args.dense),
                            "dense_in_budget": not args.dense_outside_budget}
    if "erk_power_scale" in get(scheme).options:
        opts["erk_power_scale"] = args.erk_power_scale
    return opts


def register(subparsers: Any) -> None:
    """Add the ``quotas`` sub-command."""
    choices = names("quota", sweepable=True)
    parser = subparsers.add_parser(
        "quotas",
        help="per-layer densities of the layerwise quota schemes",
        description=wrap("Show how each quota scheme spreads an overall density over the prunable "
        "layers: per-layer weights, densities and kept counts (which sum exactly to "
        "round(density * N))."),
        epilog=scheme_epilog(("quota",), sweepable_only=True),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(parser)
    parser.add_argument("--density", type=float, required=True, metavar="D",
                        help="overall density in (0, 1] (fraction of weights kept)")
    parser.add_argument("--scheme", default=",".join(choices), metavar="S[,S...]",
                        help=f"comma-separated schemes among {', '.join(choices)} "
                        "(default: all)")
    add_quota_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="PNG", help="write per-layer densities of each scheme")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the per-layer quota table (or JSON)."""
    from .._args import check_density
    from ..errors import QuotaError
    from ..masks.quota_table import quota_table

    density = check_density(args.density, "--density")
    schemes = split_list(args.scheme) or []
    if not schemes:
        raise QuotaError("--scheme: give at least one scheme")
    for s in schemes:
        if not resolve_scheme(s, "quota", "quotas").sweepable:
            raise QuotaError(f"--scheme {s} needs a mask to copy; from Python: "
                             f"sg.quotas(net, {s!r}, masks=...)")
    check_plot(args.plot)
    net = load_net(args)
    data = quota_table(net, schemes, density, dense=split_list(args.dense),
                       dense_in_budget=not args.dense_outside_budget,
                       erk_power_scale=args.erk_power_scale)
    cov = coverage(net, data["dense"], "--dense")
    data.update(cov)
    if args.plot:
        from ..sweep.plots import plot_quotas

        shown = {s: {row["name"]: row["density"][s] for row in data["layers"]}
                 for s in schemes if s in data["totals"]}
        plot_quotas(net, shown, args.plot)
    if args.json:
        print_json(data)
        return 0
    from rich.table import Table

    shown_schemes = [s for s in schemes if s in data["totals"]]
    table = Table(title=f"{net.name}: layer densities at overall density {density:g}")
    table.add_column("layer", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("params", justify="right")
    for s in shown_schemes:
        table.add_column(s, justify="right")
    for row in data["layers"]:
        name = row["name"] + (" (dense)" if row["dense"] else "")
        table.add_row(name, "x".join(map(str, row["shape"])), f"{row['params']:,}",
                      *[f"{row['density'][s]:.4f}" for s in shown_schemes])
    table.add_section()
    table.add_row("total kept", "", f"{net.params:,}",
                  *[f"{data['totals'][s]['kept']:,}" for s in shown_schemes])
    out = console()
    out.print(table)
    if data["dense"]:
        where = ("count in the budget (overall density exactly as asked)"
                 if data["dense_in_budget"] else
                 "come on top of the budget (overall density above the one asked)")
        out.print(f"dense layers {', '.join(data['dense'])} {where}")
    print_coverage(cov, out, dense=False)
    for s, msg in data["errors"].items():
        out.print(f"[yellow]{s}[/yellow]: {msg}")
    if args.plot:
        out.print(f"wrote {args.plot}")
    return 0
