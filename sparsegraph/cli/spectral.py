"""``sparsegraph spectral MODEL [MASKS]``: Ramanujan spectral metrics of a mask's layer graphs."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_args, console, load_net, load_network, print_json
from .options import coverage, load_mask_file, print_coverage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spectral",
        help="Ramanujan spectral bounds, IMDB and NaRC of each layer graph of a mask",
        description="Per-layer spectral metrics of the mask's bipartite layer graphs in the "
        "convention of Hoang et al. (ICLR 2023): lambda1, mu_hat, the Ramanujan gaps delta_s "
        "and delta_r, IMDB and NaRC. A layer graph whose mean degree is below 3 on either side "
        "is too sparse for the bounds and gets no scores; the table and the JSON say why for "
        "every missing value.",
    )
    add_model_args(p)
    p.add_argument(
        "masks",
        metavar="MASKS",
        nargs="?",
        help="mask file (.safetensors, .npz or a torch file); layers without a key are dense; "
        "omitted: the dense network",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-imdb", action="store_true", help="skip IMDB (the slowest metric)")
    p.add_argument(
        "--weighted",
        action="store_true",
        help="add weighted_gap (sigma1 - sigma2 of |W * M|) using the model's own weights",
    )
    p.add_argument(
        "--paths",
        action="store_true",
        help="add log10 input-output path counts, each layer's share and the channel min cut",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=run, kernels=True)


def run(args: argparse.Namespace) -> int:
    from ..metrics.spectral import spectral

    model, net = None, None
    if args.weighted:
        model, _, net = load_network(args)
    else:
        net = load_net(args)
    if args.masks is None:
        masks, dense = {}, list(net.names)
    else:
        masks, dense = load_mask_file(args.masks, net)
    weights = None
    if args.weighted:
        params = dict(model.named_parameters())
        weights = {name: params[name] for name in net.names if name in params}
    # a bar on long runs only: big models, interactive terminal, not while writing JSON
    progress = (not args.no_progress and not args.json and sys.stderr.isatty()
                and net.params > 2_000_000)
    report = spectral(net, masks, weights=weights, progress=progress, imdb=not args.no_imdb)
    paths = None
    if args.paths:
        from ..metrics.paths import path_metrics

        paths = path_metrics(net, masks)
    cov = coverage(net, dense, "no key in the mask file" if args.masks else
                   "no mask file: the dense network")
    if args.json:
        data = report.to_dict()
        data.update(cov)
        if paths is not None:
            data["paths"] = paths.to_dict()
        print_json(data)
        return 0
    out = console()
    out.print(report)
    print_coverage(cov, out)
    if paths is not None:
        cut = paths.min_cut
        out.print(
            f"paths: log10 = {paths.log10_paths:.4g}"
            f"{' (collapsed)' if paths.collapsed else ''}, channel min cut = {cut:g} "
            f"of {paths.channel_edges} channel edges"
        )
    return 0
