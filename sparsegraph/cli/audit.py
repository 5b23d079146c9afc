"""``sparsegraph audit MODEL [MASKS]``: direct vs effective density of a mask."""

from __future__ import annotations

import argparse

from .common import add_model_args, check_plot, console, load_net, print_json
from .options import coverage, load_mask_file, print_coverage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="direct vs effective density, dead units and layer collapse of a mask",
        description="Audit a mask for dead connections: a kept weight is effective when it lies "
        "on an input-output path of the linearised masked network (Vysogorets & Kempe).",
    )
    add_model_args(p)
    p.add_argument(
        "masks",
        metavar="MASKS",
        nargs="?",
        help="mask file: .safetensors, .npz or a torch file (read with weights_only=True); "
        "layers without a key are dense; omitted: the dense network",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--spectral", action="store_true",
                   help="add the Ramanujan spectral metrics of each layer")
    p.add_argument("--plot", metavar="PNG", help="write per-layer direct vs effective density bars")
    p.set_defaults(func=run, kernels=True)


def run(args: argparse.Namespace) -> int:
    from ..metrics.audit import audit

    check_plot(args.plot)
    net = load_net(args)
    if args.masks is None:
        masks, dense = {}, list(net.names)
    else:
        masks, dense = load_mask_file(args.masks, net)
        masks = {k: v for k, v in masks.items() if k not in dense}  # dense: no key, as in the file
    report = audit(net, masks)
    spectral = None
    if args.spectral:
        from ..metrics.spectral import spectral as spectral_metrics

        spectral = spectral_metrics(net, masks, progress=not args.json)
    if args.plot:
        from ..sweep.plots import plot_audit

        plot_audit(report, args.plot)
    cov = coverage(net, dense, "no key in the mask file" if args.masks else
                   "no mask file: the dense network")
    if args.json:
        data = report.to_dict()
        data.update(cov)
        if spectral is not None:
            data["spectral"] = spectral.to_dict()
        print_json(data)
        return 0
    out = console()
    out.print(report)
    print_coverage(cov, out, dense=False)  # the report names the dense layers itself
    if spectral is not None:
        out.print(spectral)
    if args.plot:
        out.print(f"wrote {args.plot}")
    return 0
