"""``sparsegraph prune MODEL --scheme synflow --density D -o masks.safetensors``: masks from a
pruning-at-initialization score, written to a mask file."""

from __future__ import annotations

import argparse
import sys

from ..registry import names
from .common import add_model_args, check_mask_output, parse_shape, print_json, split_list
from .options import (
    add_data_args,
    add_scheme_arg,
    coverage,
    data_from_args,
    print_coverage,
    resolve_scheme,
    scheme_epilog,
    wrap,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help=f"masks from a pruning score ({', '.join(names('pruner'))})",
        description=wrap("Score every prunable weight of MODEL at its initialisation and keep "
        "exactly round(density * N) of them (globally, or per layer with --quotas). SNIP and GraSP "
        "score on data: give --data."),
        epilog=scheme_epilog(("pruner",)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    add_scheme_arg(p, ("pruner",), default="synflow", old="--method")
    p.add_argument("--density", type=float, required=True,
                   help="fraction of the prunable weights kept, in (0, 1]")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the model's initialisation and of 'random' (default 0)")
    p.add_argument("--quotas", metavar="SCHEME", default=None,
                   help="prune per layer with this quota scheme (e.g. erk, igq) instead of one "
                   "global ranking")
    p.add_argument("--exclude", metavar="NAMES", default=None,
                   help="comma-separated layer names or globs kept dense (they count in the "
                   "budget)")
    p.add_argument("--rounds", type=int, default=100,
                   help="rounds of the iterative schemes (synflow; default 100)")
    p.add_argument("--invert", action="store_true", help="score inversion (Frankle et al. "
                   "2021): keep the lowest-scoring weights instead of the highest")
    add_data_args(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="mask file to write (.safetensors, .npz, .pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run, kernels=True)


def run(args: argparse.Namespace) -> int:
    import warnings

    from .._args import check_count, check_density, check_seed, select_layers
    from ..errors import QuotaError
    from ..graph.trace import trace
    from ..masks.files import save_masks
    from ..pytorch.models import MODELS, build_model, resolve_model
    from ..pytorch.pruners import prune
    from .common import identity_modules

    record = resolve_scheme(args.scheme, "pruner", "prune")
    density = check_density(args.density, "--density")
    seed = check_seed(args.seed, "--seed")
    rounds = check_count(args.rounds, "--rounds")
    if "data" in record.needs and args.data is None:
        raise QuotaError(
            f"--scheme {record.name} scores on data: pass --data digits|random|FILE.npz|FILE.pt|"
            f"MODULE:FACTORY (data-free: {', '.join(names('pruner', without='data'))})"
        )
    if args.quotas is not None:
        resolve_scheme(args.quotas, "quota", "prune")
    check_mask_output(args)
    if args.model in MODELS and args.input_shape is None:
        model, example = build_model(args.model, seed=seed)
    else:
        model, example = resolve_model(args.model, parse_shape(args.input_shape))
    data = data_from_args(args, model, example) if "data" in record.needs else None
    exclude = split_list(args.exclude)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = prune(model, record.name, density=density, example_input=example,
                      quotas=args.quotas, seed=seed, rounds=rounds, exclude=exclude, data=data,
                      invert=args.invert)
    for w in caught:
        print(f"sparsegraph prune: warning: {w.message}", file=sys.stderr)
    net = trace(model, example, name=args.model, **identity_modules(args))
    cov = coverage(net, select_layers(net, exclude, what="--exclude") if exclude else [],
                   "--exclude")
    meta = {
        "scheme": record.name,
        "method": record.name,  # the former name of "scheme"
        "quotas": args.quotas or "global",
        "density": density,
        "seed": seed,
        "granularity": "weight",
        "model": args.model,
        "exclude": exclude or [],
        "invert": args.invert,
    }
    if "iterations" in record.needs:
        meta["rounds"] = rounds
    if data is not None:
        meta["data"] = data.description
    path = save_masks(args.output, masks, net=net, metadata=meta, overwrite=args.force)
    kept = sum(int(m.sum()) for m in masks.values())
    summary = {"output": str(path), "network": net.name, "scheme": record.name,
               "params": net.params, "kept": kept, "direct_density": kept / net.params,
               "collapsed_layers": list(masks.collapsed_layers),
               "data": data.description if data is not None else None, **cov}
    if args.json:
        print_json(summary)
        return 0
    print(f"wrote {path}: {record.name} masks for {net.name}, {kept:,} of {net.params:,} weights "
          f"kept (density {kept / net.params:.6g})")
    if data is not None:
        print(f"data: {data.description}")
    print_coverage(cov)
    return 0
