"""``sparsegraph quotas MODEL --density D``: per-layer densities of the quota schemes."""

from __future__ import annotations

import argparse
from typing import Any

from .._args import select_layers
from ..errors import MaskError, QuotaError
from .common import add_model_args, check_plot, console, load_network, print_json, split_list

DEFAULT_SCHEMES = ("uniform", "uniform+", "er", "erk", "er_graph", "igq")


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
    opts: dict[str, Any] = {"dense": split_list(args.dense),
                            "dense_in_budget": not args.dense_outside_budget}
    if scheme == "erk":
        opts["erk_power_scale"] = args.erk_power_scale
    return opts


def register(subparsers: Any) -> None:
    """Add the ``quotas`` sub-command."""
    from ..masks.quotas import QUOTA_SCHEMES

    choices = [s for s in QUOTA_SCHEMES if s != "from_mask"]
    parser = subparsers.add_parser(
        "quotas",
        help="per-layer densities of the layerwise quota schemes",
        description="Show how each quota scheme spreads an overall density over the prunable "
        "layers: per-layer weights, densities and kept counts (which sum exactly to "
        f"round(density * N)). Schemes: {', '.join(choices)}.",
    )
    add_model_args(parser)
    parser.add_argument("--density", type=float, required=True, metavar="D",
                        help="overall density in (0, 1] (fraction of weights kept)")
    parser.add_argument("--scheme", default=",".join(DEFAULT_SCHEMES), metavar="S[,S...]",
                        help=f"comma-separated schemes among {', '.join(choices)} "
                        "(default: all)")
    add_quota_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="PNG", help="write per-layer densities of each scheme")
    parser.set_defaults(func=run)


def quota_table(net: Any, schemes: list[str], density: float,
                args: argparse.Namespace) -> dict[str, Any]:
    """The JSON-able result: per-layer params, densities and counts of each scheme."""
    from ..masks.quotas import quota_counts, quotas

    results: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for scheme in schemes:
        try:
            results[scheme] = quotas(net, scheme, density, **quota_options(args, scheme))
        except QuotaError as exc:
            if len(schemes) == 1:
                raise
            errors[scheme] = str(exc)
    counts = {s: quota_counts(net, q) for s, q in results.items()}
    try:
        dense = set(select_layers(net, split_list(args.dense), what="dense"))
    except MaskError as exc:
        raise QuotaError(str(exc)) from None
    layers = [
        {
            "name": layer.name,
            "shape": list(layer.shape),
            "params": layer.params,
            "dense": layer.name in dense,
            "density": {s: q[layer.name] for s, q in results.items()},
            "kept": {s: c[layer.name] for s, c in counts.items()},
        }
        for layer in net.layers
    ]
    totals = {s: {"kept": sum(c.values()), "density": sum(c.values()) / net.params}
              for s, c in counts.items()}
    return {
        "network": net.name,
        "params": net.params,
        "density": density,
        "dense": sorted(dense, key=net.names.index),
        "dense_in_budget": not args.dense_outside_budget,
        "layers": layers,
        "totals": totals,
        "errors": errors,
    }


def run(args: argparse.Namespace) -> int:
    """Print the per-layer quota table (or JSON)."""
    from ..masks.quotas import QUOTA_SCHEMES, _check_density, _unknown_scheme

    density = _check_density(args.density, "--density")
    schemes = split_list(args.scheme) or []
    if not schemes:
        raise QuotaError("--scheme: give at least one scheme")
    for s in schemes:
        if s not in QUOTA_SCHEMES:
            raise _unknown_scheme(s)
        if s == "from_mask":
            raise QuotaError("--scheme from_mask needs a mask; use the Python API "
                             "sg.quotas(net, 'from_mask', masks=...)")
    check_plot(args.plot)
    _, _, net = load_network(args)
    data = quota_table(net, schemes, density, args)
    if args.plot:
        from ..sweep.plots import plot_quotas

        shown = {s: {row["name"]: row["density"][s] for row in data["layers"]}
                 for s in schemes if s in data["totals"]}
        plot_quotas(net, shown, args.plot)
    if args.json:
        print_json(data)
        return 0
    from rich.table import Table

    shown = [s for s in schemes if s in data["totals"]]
    table = Table(title=f"{net.name}: layer densities at overall density {density:g}")
    table.add_column("layer", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("params", justify="right")
    for s in shown:
        table.add_column(s, justify="right")
    for row in data["layers"]:
        name = row["name"] + (" (dense)" if row["dense"] else "")
        table.add_row(name, "x".join(map(str, row["shape"])), f"{row['params']:,}",
                      *[f"{row['density'][s]:.4f}" for s in shown])
    table.add_section()
    table.add_row("total kept", "", f"{net.params:,}",
                  *[f"{data['totals'][s]['kept']:,}" for s in shown])
    out = console()
    out.print(table)
    if data["dense"]:
        where = ("count in the budget (overall density exactly as asked)"
                 if data["dense_in_budget"] else
                 "come on top of the budget (overall density above the one asked)")
        out.print(f"dense layers {', '.join(data['dense'])} {where}")
    for s, msg in data["errors"].items():
        out.print(f"[yellow]{s}[/yellow]: {msg}")
    return 0
